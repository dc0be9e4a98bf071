//! The HTML pages: the public status page (`/`) and one service's page
//! (`/services/{service_id}`), rendered from [`super::view`] with compiled askama templates.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::error::{HttpError, PageError};
use super::params::WindowParams;
use super::view::{self, ServicePage, StatusPage};
use super::HttpState;

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
    /// RFC 3339.
    since: String,
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

/// `GET /`: the public status page, computed from one published prefix.
pub async fn index(State(state): State<HttpState>) -> Result<Html<String>, PageError> {
    let now = state.projections.now();
    let (page, alerts) = {
        let published = state.projections.read();
        let alerts = crate::alert::firing_at(&published.projection, state.alerting.policy(), now)
            .into_iter()
            .map(|alert| FiringAlert {
                service_id: alert.service_id,
                alert: alert.rule.name(),
                severity: alert.rule.severity().name(),
                since: crate::domain::format_millis(alert.since),
            })
            .collect();
        (
            view::status_page(&published, &state.verifier_key, now),
            alerts,
        )
    };
    render(&IndexTemplate {
        page: &page,
        alerts,
    })
}

/// `GET /services/{service_id}`: one service over the window in the query (last 30 days
/// by default).
pub async fn service(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    params: Result<Query<WindowParams>, QueryRejection>,
) -> Result<Html<String>, PageError> {
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
        view::service_page(&published, &state.verifier_key, &service_id, &window, now)?
    };
    render(&ServiceTemplate { page: &page })
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

fn render(template: &impl Template) -> Result<Html<String>, PageError> {
    template.render().map(Html).map_err(|e| {
        PageError(HttpError::internal(format!(
            "rendering the page failed: {e}"
        )))
    })
}
