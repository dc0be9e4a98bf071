//! Ways to follow the ledger without reading the page: Atom feeds of incidents and
//! maintenance (`/feed.atom`, `/services/{service_id}/feed.atom`) and a service's 30-day
//! availability badge (`/api/v1/badge/{service_id}` for shields.io, and
//! `/services/{service_id}/badge.svg`). The front feed is rendered once per prefix and
//! served from memory; the others are computed per request with the same validators.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::cache::{respond_computed, Audience, Fresh};
use super::error::{ApiError, PageError};
use super::pages::render;
use super::view::{self, BadgeSvg, FeedView};
use super::HttpState;

const ATOM: &str = "application/atom+xml; charset=utf-8";
const SVG: &str = "image/svg+xml";
const JSON: &str = "application/json";

#[derive(Template)]
#[template(path = "feed.xml")]
struct FeedTemplate<'a> {
    feed: &'a FeedView,
}

#[derive(Template)]
#[template(path = "badge.svg")]
struct BadgeTemplate<'a> {
    svg: &'a BadgeSvg,
}

/// `GET /feed.atom`: every service's incidents and maintenance. A feed shows nothing about
/// the current time, so it holds for as long as the prefix does.
pub async fn feed(State(state): State<HttpState>, request: HeaderMap) -> Response {
    let now = state.projections.now();
    let tree_size = state.projections.read().tree_size;
    let renderer = state.clone();
    let rendered = state
        .caches
        .feed
        .get_or_render(tree_size, now, move || {
            let published = renderer.projections.read();
            let feed = view::feed(&published, None, &renderer.zone).map_err(PageError::from)?;
            let body = render(&FeedTemplate { feed: &feed })?;
            Ok::<_, PageError>(Fresh {
                tree_size: published.tree_size,
                until: i64::MAX,
                content_type: ATOM,
                body: body.0.into_bytes(),
            })
        })
        .await;
    match rendered {
        Ok(rendered) => rendered.respond(&request, Audience::Public),
        Err(error) => error.into_response(),
    }
}

/// `GET /services/{service_id}/feed.atom`: one service's incidents and maintenance.
pub async fn service_feed(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    request: HeaderMap,
) -> Result<Response, PageError> {
    let feed = {
        let published = state.projections.read();
        view::feed(&published, Some(&service_id), &state.zone)?
    };
    let body = render(&FeedTemplate { feed: &feed })?.0;
    Ok(respond_computed(
        &request,
        Audience::Public,
        ATOM,
        Bytes::from(body),
    ))
}

/// `GET /api/v1/badge/{service_id}`: the shields.io endpoint badge. Public even with a
/// read token, as the status page is: shields.io fetches it without credentials.
pub async fn badge_json(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    request: HeaderMap,
) -> Result<Response, ApiError> {
    let badge = view::badge(&state.projections.read(), &service_id)?;
    let body = serde_json::to_vec(&badge).expect("a badge serializes");
    Ok(respond_computed(
        &request,
        Audience::Public,
        JSON,
        Bytes::from(body),
    ))
}

/// `GET /services/{service_id}/badge.svg`: the same badge as an image to embed.
pub async fn badge_svg(
    State(state): State<HttpState>,
    Path(service_id): Path<String>,
    request: HeaderMap,
) -> Result<Response, PageError> {
    let badge = view::badge(&state.projections.read(), &service_id)?;
    let body = render(&BadgeTemplate {
        svg: &BadgeSvg::new(&badge),
    })?
    .0;
    Ok(respond_computed(
        &request,
        Audience::Public,
        SVG,
        Bytes::from(body),
    ))
}
