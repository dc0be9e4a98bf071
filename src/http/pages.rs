//! The HTML pages: the public status page (`/`), rendered once per state and served from
//! memory ([`super::cache`]), and one service's page (`/services/{service_id}`), rendered
//! for each request; both from [`super::view`] with compiled askama templates.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use super::cache::{respond_computed, Audience, Fresh};
use super::error::{HttpError, PageError};
use super::params::WindowParams;
use super::view::{self, ServicePage, StatusPage};
use super::HttpState;

pub const HTML: &str = "text/html; charset=utf-8";

#[derive(Template)]
#[template(path = "index.html")]
struct IndexTemplate<'a> {
    page: &'a StatusPage,
    alerts: Vec<FiringAlert>,
}

/// One row of the status page's "Alerts firing" table.
struct FiringAlert {
    service_id: String,
    alert: &'static str,
    severity: &'static str,
    since: crate::http::view::TimeView,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServiceTemplate<'a> {
    page: &'a ServicePage,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

/// `GET /`: the public status page, computed from one published prefix and rendered again
/// only when the prefix or what it shows for the current time changes.
pub async fn index(State(state): State<HttpState>, request: HeaderMap) -> Response {
    let now = state.projections.now();
    let tree_size = state.projections.read().tree_size;
    let renderer = state.clone();
    let rendered = state
        .caches
        .status_page
        .get_or_render(tree_size, now, move || {
            let published = renderer.projections.read();
            let policy = renderer.alerting.policy();
            let alerts = crate::alert::firing_at(&published.projection, policy, now)
                .into_iter()
                .map(|alert| FiringAlert {
                    service_id: alert.service_id,
                    alert: alert.rule.name(),
                    severity: alert.rule.severity().name(),
                    since: renderer.zone.time(alert.since),
                })
                .collect();
            let page = view::status_page(&published, &renderer.verifier_key, &renderer.zone, now);
            let body = render(&IndexTemplate {
                page: &page,
                alerts,
            })?;
            // Alerts may start or stop firing with no new entry (a `for` elapsing, the
            // burn-rate grid), as states do.
            let until = view::states_hold_until(&published, now).min(
                crate::alert::firing_holds_until(&published.projection, policy, now),
            );
            Ok::<_, PageError>(Fresh {
                tree_size: published.tree_size,
                until,
                content_type: HTML,
                body: body.0.into_bytes(),
            })
        })
        .await;
    match rendered {
        Ok(rendered) => rendered.respond(&request, Audience::Public),
        Err(error) => error.into_response(),
    }
}

/// `GET /services/{service_id}`: one service over the window in the query (last 30 days
/// by default).
pub async fn service(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    params: Result<Query<WindowParams>, QueryRejection>,
    request: HeaderMap,
) -> Result<Response, PageError> {
    let Query(params) = params.map_err(|e| HttpError::bad_request(e.body_text()))?;
    if params.tree_size.is_some() {
        return Err(HttpError::bad_request(
            "the page shows the latest checkpointed prefix; ask /api/v1/… with tree_size for an earlier one",
        )
        .into());
    }
    let window = params.window_spec()?;
    let now = state.projections.now();
    let page = {
        let published = state.projections.read();
        view::service_page(
            &published,
            &state.verifier_key,
            &service_id,
            &window,
            &state.zone,
            now,
        )?
    };
    let body = render(&ServiceTemplate { page: &page })?.0;
    Ok(respond_computed(
        &request,
        Audience::Public,
        HTML,
        Bytes::from(body),
    ))
}

/// A small page for an HTTP error.
pub fn error_page(error: &HttpError) -> String {
    ErrorTemplate {
        status: error.status.as_u16(),
        reason: error.status.canonical_reason().unwrap_or("Error"),
        message: &error.message,
    }
    .render()
    .unwrap_or_else(|_| error.message.clone())
}

pub(super) fn render(template: &impl Template) -> Result<Html<String>, PageError> {
    template.render().map(Html).map_err(|e| {
        PageError(HttpError::internal(format!(
            "rendering the page failed: {e}"
        )))
    })
}
