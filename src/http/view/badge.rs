//! A service's availability badge over the last 30 days, as plain values: the
//! shields.io endpoint JSON (`/api/v1/badge/{service_id}`) and a flat SVG badge
//! (`templates/badge.svg`) say the same.

use serde::Serialize;

use super::format::percent;
use crate::projector::Published;
use crate::query::{self, QueryError};
use crate::window::WindowSpec;

/// The window a badge covers.
const BADGE_WINDOW: WindowSpec = WindowSpec::Last30Days;
pub const BADGE_LABEL: &str = "availability 30d";
/// Below this (and below target) a badge is red rather than orange.
const POOR: f64 = 0.95;

/// The shields.io endpoint schema (<https://shields.io/badges/endpoint-badge>).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Badge {
    pub schema_version: u8,
    pub label: String,
    pub message: String,
    /// A shields.io colour name.
    pub color: &'static str,
    /// shields.io caches for at least this long (its minimum).
    pub cache_seconds: u32,
}

/// The SVG badge's geometry (flat style, text widths estimated for 11 px Verdana).
#[derive(Debug, Clone)]
pub struct BadgeSvg {
    pub label: String,
    pub message: String,
    pub fill: &'static str,
    pub label_width: u32,
    pub message_width: u32,
    pub width: u32,
    /// Centres of the two texts, in tenths of a pixel (the SVG is drawn at scale 0.1).
    pub label_x: u32,
    pub message_x: u32,
}

/// `service_id`'s badge: availability over the last 30 days, green when it meets the SLO
/// target, orange below it, red below 95%, grey without data.
pub fn badge(published: &Published, service_id: &str) -> Result<Badge, QueryError> {
    let spec = published
        .projection
        .spec(service_id)
        .ok_or_else(|| QueryError::UnknownService(service_id.to_owned()))?;
    let report = query::availability(published, service_id, &BADGE_WINDOW)?;
    let (message, color) = match report.availability {
        None => ("no data".to_owned(), "lightgrey"),
        Some(value) if value >= spec.slo_target => (percent(value), "brightgreen"),
        Some(value) if value >= POOR => (percent(value), "orange"),
        Some(value) => (percent(value), "red"),
    };
    Ok(Badge {
        schema_version: 1,
        label: BADGE_LABEL.into(),
        message,
        color,
        cache_seconds: 300,
    })
}

impl BadgeSvg {
    pub fn new(badge: &Badge) -> BadgeSvg {
        let fill = match badge.color {
            "brightgreen" => "#1a7f37",
            "orange" => "#b35900",
            "red" => "#cf222e",
            _ => "#57606a",
        };
        let label_width = text_width(&badge.label);
        let message_width = text_width(&badge.message);
        BadgeSvg {
            label: badge.label.clone(),
            message: badge.message.clone(),
            fill,
            label_width,
            message_width,
            width: label_width + message_width,
            label_x: label_width * 5,
            message_x: label_width * 10 + message_width * 5,
        }
    }
}

/// Pixels for `text` with 5 px padding each side: 7 px per character, which covers digits
/// and lower-case letters in 11 px Verdana.
fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * 7 + 10
}
