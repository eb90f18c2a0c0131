//! The web console at `/ui/`: pages rendered on the server from templates built into the binary
//! (no JavaScript toolchain, no client-side framework; one small script of our own for copy
//! buttons and the live trigger preview).
//!
//! Every page reads and changes things through the API's own router ([`call`]), as the operator
//! who logged in ([`session`]): the console has the API's validation, ETags, masking and access
//! rules, and none of its own. Templates escape everything they print (`.html` autoescape), and
//! every answer carries a Content-Security-Policy without inline script, so a payload, header or
//! receiver's answer is always shown as text.
//!
//! - [`session`]: login with a control token, the session cookie, the cross-site request token.
//! - [`call`]: the API, called in process.
//! - [`pages`]: the pages: overview, sources, destinations, triggers, events, dead letters.
//! - [`assets`]: the templates, the stylesheet and the script.

pub mod assets;
pub mod call;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use prometheus::Registry;
use serde_json::{Value, json};

use crate::tokens::Tokens;
use call::Api;
use session::Session;

/// Where the console is served.
pub const BASE: &str = "/ui";

/// What the console's pages share.
#[derive(Clone)]
pub struct Console {
    /// The API, called in process.
    pub api: Api,
    /// The accepted tokens (sessions are keyed with them).
    pub tokens: Arc<Tokens>,
    /// The templates.
    pub templates: Arc<Environment<'static>>,
    /// The metrics of this process: the overview shows the health of the roles it runs.
    pub registry: Registry,
}

impl Console {
    /// The console over `api` (the API's router), with `tokens`; the overview reads `registry`.
    pub fn new(
        api: Router,
        max_body_bytes: usize,
        tokens: Arc<Tokens>,
        registry: Registry,
    ) -> Self {
        Self {
            api: Api::new(api, max_body_bytes),
            tokens,
            templates: Arc::new(assets::templates()),
            registry,
        }
    }

    /// Renders template `name` with `context`, the session (if any) and the page's place in the
    /// navigation, as a page.
    pub fn render(&self, name: &str, session: Option<&Session>, mut context: Value) -> Response {
        if let Value::Object(object) = &mut context {
            object.insert(
                "session".into(),
                session.map_or(Value::Null, |session| {
                    json!({
                        "can_write": session.can_write(),
                        "csrf": session.csrf,
                    })
                }),
            );
        }
        let rendered = self
            .templates
            .get_template(name)
            .and_then(|template| template.render(minijinja::value::Serde(&context)));
        match rendered {
            Ok(html) => Html(html).into_response(),
            Err(error) => {
                tracing::error!(template = name, error = %error, "A console page failed to render.");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("<!doctype html><title>Error</title><p>This page failed to render; the control log says why.</p>"),
                )
                    .into_response()
            }
        }
    }

    /// [`Self::render`], answered with `status`.
    pub fn render_status(
        &self,
        status: StatusCode,
        name: &str,
        session: Option<&Session>,
        context: Value,
    ) -> Response {
        let mut response = self.render(name, session, context);
        if response.status().is_success() {
            *response.status_mut() = status;
        }
        response
    }

    /// A page that says what went wrong, with `status`.
    pub fn error(&self, session: Option<&Session>, status: StatusCode, message: &str) -> Response {
        self.render_status(
            status,
            "error.html",
            session,
            json!({"status": status.as_u16(), "reason": status.canonical_reason(), "message": message}),
        )
    }
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    /// The session of the request; without one, the login page (coming back here after).
    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        match session::from_headers(&console.tokens, &parts.headers) {
            Some(session) => Ok(session),
            None => {
                let back = parts
                    .uri
                    .path_and_query()
                    .map_or(BASE, |path| path.as_str());
                let login = format!("{BASE}/login?next={}", call::query_value(back));
                Err(Redirect::to(&login).into_response())
            }
        }
    }
}

/// The console's routes, under [`BASE`].
pub fn router(console: Console) -> Router {
    let routes = [
        ("/", get(pages::overview)),
        ("/login", get(pages::login_page).post(pages::login)),
        ("/logout", post(pages::logout)),
        ("/static/{file}", get(assets::serve)),
        ("/sources", get(pages::sources).post(pages::create_source)),
        ("/sources/new", get(pages::new_source)),
        ("/sources/{id}", get(pages::source)),
        ("/sources/{id}/{action}", post(pages::source_action)),
        (
            "/destinations",
            get(pages::destinations).post(pages::create_destination),
        ),
        ("/destinations/new", get(pages::new_destination)),
        ("/destinations/{id}", get(pages::destination)),
        (
            "/destinations/{id}/{action}",
            post(pages::destination_action),
        ),
        (
            "/triggers",
            get(pages::triggers).post(pages::create_trigger),
        ),
        ("/triggers/new", get(pages::new_trigger)),
        (
            "/triggers/{id}",
            get(pages::trigger).post(pages::save_trigger),
        ),
        ("/triggers/{id}/delete", post(pages::delete_trigger)),
        ("/preview", post(pages::preview)),
        ("/edit/{kind}/{id}", get(pages::edit).post(pages::save_edit)),
        ("/events", get(pages::events)),
        ("/events/{id}", get(pages::event)),
        ("/events/{id}/replay", post(pages::replay_event)),
        (
            "/dead-letters",
            get(pages::dead_letters).post(pages::dead_letter_action),
        ),
        ("/{*rest}", get(pages::not_found).post(pages::not_found)),
    ];
    let mut router = Router::new();
    for (path, route) in routes {
        router = router.route(&format!("{BASE}{path}"), route);
    }
    router
        .route(
            BASE,
            get(|| async { Redirect::permanent(&format!("{BASE}/")) }),
        )
        .layer(middleware::from_fn(protect))
        .with_state(console)
}

/// The Content-Security-Policy of every console answer: scripts, styles and images only from
/// the console itself (never inline), no frames, forms only to the console.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every console answer; pages are never cached (they show
/// secrets once, and state that changes).
async fn protect(mut request: Request, next: Next) -> Response {
    let static_asset = request.uri().path().starts_with(&format!("{BASE}/static/"));
    // HTTP/2 carries the host in the URI (`:authority`), not in a `Host` header: the origin check
    // of changes reads `Host`.
    if !request.headers().contains_key(header::HOST)
        && let Some(authority) = request.uri().authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(header::HOST, host);
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !static_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The fields of a posted form, in order (a field may repeat, as checked boxes do).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.trim())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// Refuses a change the session may not make, or that did not come from the console's own form:
/// the forbidden page, or nothing.
pub fn guard(
    console: &Console,
    session: &Session,
    headers: &HeaderMap,
    csrf: &str,
) -> Option<Response> {
    if !session.posted_here(headers, csrf) {
        return Some(console.error(
            Some(session),
            StatusCode::FORBIDDEN,
            "This change did not come from a console page of this session (its form is stale, \
             or another site sent it). Reload the page and try again.",
        ));
    }
    if !session.can_write() {
        return Some(console.error(
            Some(session),
            StatusCode::FORBIDDEN,
            "You are logged in with a read-only token: it reads, and changes nothing.",
        ));
    }
    None
}
