//! What `serve`, `demo` and the other commands tell whoever started them, on stderr, next to
//! the logs: start-up banners (addresses, verifier key), progress, the final error.
//!
//! With `--log-format text` these are plain lines for a person. With `--log-format json`
//! every one is a JSON object on its own line, shaped like the JSON logs (`timestamp`,
//! `level`, `fields` with `message` and the banner's values, `target`), so a log collector
//! reading stderr never meets a line that is not JSON.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

static JSON: AtomicBool = AtomicBool::new(false);

/// The `target` of console messages in JSON.
const TARGET: &str = "uptime_ledger::console";

/// Chooses the format for the rest of the process (`main` calls it once, before any
/// command runs).
pub fn init(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// One message.
pub fn say(message: impl Display) {
    emit("INFO", &message.to_string(), &[]);
}

/// The error a command ended with.
pub fn error(message: impl Display) {
    emit("ERROR", &message.to_string(), &[]);
}

/// An empty line between paragraphs, in text only.
pub fn blank_line() {
    if !JSON.load(Ordering::Relaxed) {
        let _ = std::io::stderr().lock().write_all(b"\n");
    }
}

/// A title and labelled values: aligned lines in text, one object in JSON whose field
/// names are the labels in snake case (`verifier key` → `verifier_key`).
pub fn banner(title: &str, fields: &[(&str, String)]) {
    emit("INFO", title, fields);
}

fn emit(level: &str, message: &str, fields: &[(&str, String)]) {
    let text = if JSON.load(Ordering::Relaxed) {
        json_line(
            level,
            message,
            fields,
            &humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        )
    } else {
        text_lines(level, message, fields)
    };
    // One write per message, so lines of concurrent messages do not interleave.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn text_lines(level: &str, message: &str, fields: &[(&str, String)]) -> String {
    let mut text = if level == "ERROR" {
        format!("error: {message}\n")
    } else {
        format!("{message}\n")
    };
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 1;
    for (label, value) in fields {
        text.push_str(&format!("  {:<width$} {value}\n", format!("{label}:")));
    }
    text
}

fn json_line(level: &str, message: &str, fields: &[(&str, String)], timestamp: &str) -> String {
    let mut values = Map::new();
    values.insert("message".into(), Value::from(message));
    for (label, value) in fields {
        values.insert(snake_case(label), Value::from(value.as_str()));
    }
    let mut object = Map::new();
    object.insert("timestamp".into(), Value::from(timestamp));
    object.insert("level".into(), Value::from(level));
    object.insert("fields".into(), Value::Object(values));
    object.insert("target".into(), Value::from(TARGET));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

fn snake_case(label: &str) -> String {
    let mut key = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c.to_ascii_lowercase());
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(&'static str, String)> {
        vec![
            ("gRPC", "http://127.0.0.1:50051".into()),
            ("status page", "http://127.0.0.1:8080/".into()),
            ("verifier key", "o+1a2b+Ae\"x".into()),
        ]
    }

    #[test]
    fn text_aligns_the_labels_under_the_title() {
        assert_eq!(
            text_lines("INFO", "serving", &fields()),
            "serving\n  gRPC:         http://127.0.0.1:50051\n  status page:  http://127.0.0.1:8080/\n  verifier key: o+1a2b+Ae\"x\n"
        );
        assert_eq!(text_lines("ERROR", "no", &[]), "error: no\n");
    }

    #[test]
    fn json_is_one_object_per_message_shaped_like_the_logs() {
        let line = json_line("INFO", "serving", &fields(), "2026-11-28T00:00:00.000000Z");
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], TARGET);
        assert_eq!(value["timestamp"], "2026-11-28T00:00:00.000000Z");
        assert_eq!(value["fields"]["message"], "serving");
        assert_eq!(value["fields"]["grpc"], "http://127.0.0.1:50051");
        assert_eq!(value["fields"]["status_page"], "http://127.0.0.1:8080/");
        assert_eq!(value["fields"]["verifier_key"], "o+1a2b+Ae\"x");
    }

    #[test]
    fn labels_become_snake_case_keys() {
        assert_eq!(snake_case("gRPC"), "grpc");
        assert_eq!(snake_case("Prometheus metrics"), "prometheus_metrics");
        assert_eq!(snake_case("one service:"), "one_service");
        assert_eq!(snake_case("JSON API"), "json_api");
    }
}
