//! Every error the HTTP layer answers becomes a status code and a message here: as JSON
//! under `/api/`, as a small HTML page elsewhere.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::log::ReadError;
use crate::query::QueryError;

/// An HTTP error: the status that fits, a stable machine-readable code and a message a
/// person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }
}

impl From<QueryError> for HttpError {
    fn from(error: QueryError) -> HttpError {
        match error {
            QueryError::UnknownService(_) => HttpError::not_found(error.to_string()),
            QueryError::BadWindow(message) => HttpError::bad_request(message),
            QueryError::Prefix(read) => read.into(),
        }
    }
}

impl From<ReadError> for HttpError {
    fn from(error: ReadError) -> HttpError {
        match error {
            // A tree size beyond the log, or one no checkpoint was signed at.
            ReadError::OutOfRange(message) | ReadError::NotFound(message) => {
                HttpError::not_found(message)
            }
            ReadError::Storage(message) => HttpError::internal(message),
        }
    }
}

/// An error answered as JSON: `{"error": {"status": 404, "code": "not_found", "message": …}}`.
#[derive(Debug)]
pub struct ApiError(pub HttpError);

impl<E: Into<HttpError>> From<E> for ApiError {
    fn from(error: E) -> ApiError {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let HttpError {
            status,
            code,
            message,
        } = self.0;
        let body = serde_json::json!({
            "error": { "status": status.as_u16(), "code": code, "message": message }
        });
        (status, Json(body)).into_response()
    }
}

/// An error answered as a small HTML page.
#[derive(Debug)]
pub struct PageError(pub HttpError);

impl<E: Into<HttpError>> From<E> for PageError {
    fn from(error: E) -> PageError {
        PageError(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = super::pages::error_page(&self.0);
        (self.0.status, Html(page)).into_response()
    }
}
