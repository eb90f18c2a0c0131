//! Lists: filtered by `enabled` and by id or name prefix, in id order, in pages of `limit` with
//! an opaque `cursor` to the next page. The cursor is the last id shown, so a page is stable
//! while resources are added or deleted around it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookline_schemas::{Resource, ResourceId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::kind;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 500;

/// The query of a list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Most items in the page, 1 to 500; 50 when absent.
    pub limit: Option<usize>,
    /// Where the page starts: the `next_cursor` of the page before; empty or absent for the
    /// first page.
    pub cursor: Option<String>,
    /// Only enabled (`true`) or disabled (`false`) resources.
    pub enabled: Option<bool>,
    /// Only resources whose name starts with this, ignoring case.
    pub name_prefix: Option<String>,
    /// Only resources whose id starts with this.
    pub id_prefix: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The resources, in id order.
    pub items: Vec<Resource>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The page `query` asks for out of `resources`, which are of one kind and in id order.
pub fn page(resources: Vec<Resource>, query: &ListQuery) -> Result<Page, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    // An empty cursor is the first page: clients often send `cursor=` before they have one.
    let after = query
        .cursor
        .as_deref()
        .filter(|cursor| !cursor.is_empty())
        .map(decode)
        .transpose()?;
    let name_prefix = query.name_prefix.as_deref().map(str::to_lowercase);
    let mut matching = resources.into_iter().filter(|resource| {
        after
            .as_ref()
            .is_none_or(|after| kind::id(resource) > after)
            && query
                .enabled
                .is_none_or(|enabled| kind::enabled(resource) == enabled)
            && query
                .id_prefix
                .as_deref()
                .is_none_or(|prefix| kind::id(resource).as_str().starts_with(prefix))
            && name_prefix
                .as_deref()
                .is_none_or(|prefix| kind::name(resource).to_lowercase().starts_with(prefix))
    });
    let items: Vec<Resource> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let next_cursor = items
        .last()
        .filter(|_| more)
        .map(|last| encode(kind::id(last)));
    Ok(Page { items, next_cursor })
}

fn encode(id: &ResourceId) -> String {
    URL_SAFE_NO_PAD.encode(id.as_str())
}

fn decode(cursor: &str) -> Result<ResourceId, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|id| ResourceId::parse(id).ok())
        .ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API returned".to_owned()))
}

#[cfg(test)]
mod tests {
    use hookline_schemas::{Source, SourceAuth};

    use super::*;

    fn sources() -> Vec<Resource> {
        (0..5)
            .map(|n| {
                let mut source = Source::new(
                    ResourceId::parse(format!("s{n}")).unwrap(),
                    vec![SourceAuth::Open],
                );
                source.name = if n % 2 == 0 {
                    format!("GitHub {n}")
                } else {
                    format!("Stripe {n}")
                };
                source.enabled = n != 3;
                Resource::Source(source)
            })
            .collect()
    }

    fn ids(page: &Page) -> Vec<String> {
        page.items.iter().map(|r| kind::id(r).to_string()).collect()
    }

    #[test]
    fn pages_through_everything_with_the_cursor() {
        let query = ListQuery {
            limit: Some(2),
            ..ListQuery::default()
        };
        let first = page(sources(), &query).unwrap();
        assert_eq!(ids(&first), ["s0", "s1"]);
        let second = page(
            sources(),
            &ListQuery {
                cursor: first.next_cursor.clone(),
                ..query.clone()
            },
        )
        .unwrap();
        assert_eq!(ids(&second), ["s2", "s3"]);
        let last = page(
            sources(),
            &ListQuery {
                cursor: second.next_cursor,
                ..query
            },
        )
        .unwrap();
        assert_eq!(ids(&last), ["s4"]);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn an_empty_cursor_is_the_first_page() {
        let query = ListQuery {
            limit: Some(2),
            cursor: Some(String::new()),
            ..ListQuery::default()
        };
        assert_eq!(ids(&page(sources(), &query).unwrap()), ["s0", "s1"]);
    }

    #[test]
    fn filters_by_enabled_and_prefixes() {
        let query = ListQuery {
            enabled: Some(true),
            name_prefix: Some("stripe".into()),
            ..ListQuery::default()
        };
        assert_eq!(ids(&page(sources(), &query).unwrap()), ["s1"]);
        let query = ListQuery {
            id_prefix: Some("s4".into()),
            ..ListQuery::default()
        };
        assert_eq!(ids(&page(sources(), &query).unwrap()), ["s4"]);
    }

    #[test]
    fn refuses_bad_limits_and_cursors() {
        for query in [
            ListQuery {
                limit: Some(0),
                ..ListQuery::default()
            },
            ListQuery {
                limit: Some(MAX_LIMIT + 1),
                ..ListQuery::default()
            },
            ListQuery {
                cursor: Some("%%%".into()),
                ..ListQuery::default()
            },
        ] {
            assert!(matches!(
                page(sources(), &query),
                Err(ApiError::InvalidQuery(_))
            ));
        }
    }
}
