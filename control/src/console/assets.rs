//! What the console is made of, built into the binary: the page templates (`control/console/
//! templates`), the stylesheet and the script (`control/console/static`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;

/// A page's template: the shared macros and the layout (`layout`, called around the page), then
/// the page. (Templates are single sources: the processor's template language has no includes,
/// and the console's shares its build.)
macro_rules! page {
    ($name:literal) => {
        (
            $name,
            concat!(
                include_str!("../../console/templates/macros.html"),
                include_str!("../../console/templates/base.html"),
                include_str!(concat!("../../console/templates/", $name)),
            ),
        )
    };
}

/// The pages, by name.
const TEMPLATES: &[(&str, &str)] = &[
    page!("error.html"),
    page!("login.html"),
    page!("overview.html"),
    page!("sources.html"),
    page!("source.html"),
    page!("source_new.html"),
    page!("token.html"),
    page!("destinations.html"),
    page!("destination.html"),
    page!("destination_new.html"),
    page!("test_result.html"),
    page!("triggers.html"),
    page!("trigger.html"),
    page!("edit.html"),
    page!("events.html"),
    page!("event.html"),
    page!("dead_letters.html"),
    page!("outcome.html"),
];

/// The static files: name, content type, bytes.
const FILES: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../console/static/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../../console/static/console.js"),
    ),
];

/// The templates, ready to render. `.html` templates escape what they print.
pub fn templates() -> Environment<'static> {
    let mut environment = Environment::new();
    // Ids and cursors in links, escaped for a path segment or a query value.
    environment.add_filter("urlencode", |value: String| super::call::segment(&value));
    for (name, source) in TEMPLATES {
        // The templates are part of the build; a broken one fails the console's tests.
        if let Err(error) = environment.add_template(name, source) {
            tracing::error!(template = name, error = %error, "A console template does not compile.");
        }
    }
    environment
}

/// `GET /ui/static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=300"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut environment = Environment::new();
        for (name, source) in TEMPLATES {
            environment
                .add_template(name, source)
                .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        }
        let environment = templates();
        for (name, _) in TEMPLATES {
            environment
                .get_template(name)
                .unwrap_or_else(|error| panic!("{name}: {error:#}"));
        }
    }
}
