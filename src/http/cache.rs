//! Answers rendered once per state and served from memory: the status page, the Atom feeds,
//! the badges and the services list.
//!
//! A [`RenderCache`] keeps one rendered answer with the prefix (`tree_size`) and the span of
//! time `[from, until)` it holds for (what it shows for "now" does not change inside it). A
//! request inside that span for the same prefix gets the stored bytes; the first request
//! outside it renders again, once, while the others get the previous bytes. Each rendering is
//! stored as it is and precompressed with gzip and brotli (`flate2` and `brotli`, the
//! encoders tower-http's compression uses), so a rush costs no rendering and no
//! compression. The weak `ETag` is a digest of the uncompressed bytes: the same bytes, the
//! same tag, whatever the encoding; `If-None-Match` with it gets `304 Not Modified`.

use std::io::Write;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

/// How long browsers and shared caches may reuse an answer without asking (seconds).
pub const MAX_AGE_SECONDS: u32 = 5;
/// How long after that a cache may still answer with it while it fetches a fresh one.
pub const STALE_WHILE_REVALIDATE_SECONDS: u32 = 30;
/// Brotli quality for the stored forms: rendered once per state, so close to the best.
const BROTLI_QUALITY: u32 = 9;
const BROTLI_WINDOW_BITS: u32 = 22;

/// One rendered answer in every form it is served in.
#[derive(Debug)]
pub struct Rendered {
    content_type: &'static str,
    etag: HeaderValue,
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
}

/// A content coding of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// Who may store an answer: anyone (a CDN in front of the ledger), or only the browser
/// (answers behind the read token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Public,
    Private,
}

impl Audience {
    /// The `Cache-Control` value for it.
    pub fn cache_control(self) -> HeaderValue {
        let scope = match self {
            Audience::Public => "public",
            Audience::Private => "private",
        };
        HeaderValue::from_str(&format!(
            "{scope}, max-age={MAX_AGE_SECONDS}, stale-while-revalidate={STALE_WHILE_REVALIDATE_SECONDS}"
        ))
        .expect("a valid header value")
    }
}

impl Rendered {
    /// `body` with its tag and its compressed forms.
    pub fn new(content_type: &'static str, body: Vec<u8>) -> Rendered {
        let etag = etag_of(&body);
        let gzip = {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&body).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        };
        let brotli = {
            let mut output = Vec::new();
            let mut encoder = brotli::CompressorWriter::new(
                &mut output,
                4096,
                BROTLI_QUALITY,
                BROTLI_WINDOW_BITS,
            );
            encoder.write_all(&body).expect("writing to memory");
            drop(encoder);
            output
        };
        Rendered {
            content_type,
            etag,
            identity: Bytes::from(body),
            gzip: Bytes::from(gzip),
            brotli: Bytes::from(brotli),
        }
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// The uncompressed bytes.
    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    /// The answer to a request with `request` headers: `304` when `If-None-Match` names
    /// this tag, else the body in the best coding the client accepts.
    pub fn respond(&self, request: &HeaderMap, audience: Audience) -> Response {
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(header::ETAG, self.etag.clone());
        headers.insert(header::CACHE_CONTROL, audience.cache_control());
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if none_match(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        let body = match negotiate(request) {
            Coding::Brotli => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
                self.brotli.clone()
            }
            Coding::Gzip => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                self.gzip.clone()
            }
            Coding::Identity => self.identity.clone(),
        };
        (headers, body).into_response()
    }
}

/// An answer computed for each request (one service's feed or badge, a JSON answer) with
/// the same validators: a weak `ETag` of its bytes, `304` for a matching `If-None-Match`,
/// and `Cache-Control` for `audience`. Compression is left to the compression layer.
pub fn respond_computed(
    request: &HeaderMap,
    audience: Audience,
    content_type: &'static str,
    body: Bytes,
) -> Response {
    let etag = etag_of(&body);
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(header::CACHE_CONTROL, audience.cache_control());
    if none_match(request, &etag) {
        headers.insert(header::ETAG, etag);
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(header::ETAG, etag);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (headers, body).into_response()
}

/// Gives every successful `GET` answer of the JSON API that has no validator yet the
/// validators of [`respond_computed`]; `audience` is private when the API needs the read
/// token.
pub async fn validate_json(
    audience: Audience,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let conditions = request.headers().clone();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK || response.headers().contains_key(header::ETAG) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let content_type = match parts.headers.get(header::CONTENT_TYPE) {
        Some(value) if value == "application/json" => "application/json",
        _ => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    respond_computed(&conditions, audience, content_type, bytes)
}

fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::from_str(&format!("W/\"{}\"", hex::encode(&digest[..12])))
        .expect("hex is a valid header value")
}

/// What a render produces: the answer for `tree_size`, holding until `until` (exclusive).
pub struct Fresh {
    pub tree_size: u64,
    pub until: i64,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The latest rendering of one answer (see the module docs).
pub struct RenderCache {
    current: RwLock<Option<Stored>>,
    /// Held while rendering, so a rush renders once.
    rendering: tokio::sync::Mutex<()>,
    /// Counts renders (`uptime_ledger_http_renders_total`).
    renders: Counter,
}

struct Stored {
    tree_size: u64,
    from: i64,
    until: i64,
    rendered: Arc<Rendered>,
}

impl RenderCache {
    pub fn new(renders: Counter) -> RenderCache {
        RenderCache {
            current: RwLock::new(None),
            rendering: tokio::sync::Mutex::new(()),
            renders,
        }
    }

    /// The stored answer when it is for `tree_size` and holds at `now`; otherwise `render`
    /// runs (on a blocking thread, with the compression) and its answer is stored and
    /// returned. One render at a time: while one runs, other requests get the previous
    /// answer at once (a few milliseconds stale, as from a CDN) rather than queue behind
    /// it; only the very first render is waited for.
    pub async fn get_or_render<E: Send + 'static>(
        &self,
        tree_size: u64,
        now: i64,
        render: impl FnOnce() -> Result<Fresh, E> + Send + 'static,
    ) -> Result<Arc<Rendered>, E> {
        if let Some(rendered) = self.stored(tree_size, now) {
            return Ok(rendered);
        }
        let _rendering = match self.rendering.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.previous() {
                Some(previous) => return Ok(previous),
                None => self.rendering.lock().await,
            },
        };
        if let Some(rendered) = self.stored(tree_size, now) {
            return Ok(rendered);
        }
        let rendered = tokio::task::spawn_blocking(move || {
            render().map(|fresh| {
                let rendered = Rendered::new(fresh.content_type, fresh.body);
                (fresh.tree_size, fresh.until, rendered)
            })
        })
        .await;
        let (tree_size, until, rendered) = match rendered {
            Ok(result) => result?,
            Err(panicked) => std::panic::resume_unwind(panicked.into_panic()),
        };
        let rendered = Arc::new(rendered);
        self.renders.inc();
        *self.current.write().expect("render cache lock") = Some(Stored {
            tree_size,
            from: now,
            until,
            rendered: rendered.clone(),
        });
        Ok(rendered)
    }

    /// The last answer rendered, whatever it is for.
    fn previous(&self) -> Option<Arc<Rendered>> {
        let current = self.current.read().expect("render cache lock");
        current.as_ref().map(|s| s.rendered.clone())
    }

    fn stored(&self, tree_size: u64, now: i64) -> Option<Arc<Rendered>> {
        let current = self.current.read().expect("render cache lock");
        current
            .as_ref()
            .filter(|s| s.tree_size == tree_size && s.from <= now && now < s.until)
            .map(|s| s.rendered.clone())
    }
}

/// The coding to answer with: brotli or gzip, whichever `Accept-Encoding` gives the higher
/// weight (brotli on a tie), and identity when it allows neither (`q=0`, or no header).
pub fn negotiate(request: &HeaderMap) -> Coding {
    let (mut brotli, mut gzip, mut any) = (None, None, None);
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match coding.as_str() {
                "br" => brotli = Some(weight),
                "gzip" | "x-gzip" => gzip = Some(weight),
                "*" => any = Some(weight),
                _ => {}
            }
        }
    }
    let brotli = brotli.or(any).unwrap_or(0.0);
    let gzip = gzip.or(any).unwrap_or(0.0);
    if brotli > 0.0 && brotli >= gzip {
        Coding::Brotli
    } else if gzip > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = opaque(etag.to_str().unwrap_or(""));
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || opaque(tag) == ours)
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_coding_follows_accept_encoding() {
        let table = [
            ("", Coding::Identity),
            ("gzip, deflate, br, zstd", Coding::Brotli),
            ("gzip", Coding::Gzip),
            ("br;q=0.5, gzip;q=0.8", Coding::Gzip),
            ("br;q=0, gzip;q=0", Coding::Identity),
            ("*", Coding::Brotli),
            ("*;q=0.3, br;q=0", Coding::Gzip),
            ("identity", Coding::Identity),
            ("deflate", Coding::Identity),
        ];
        for (accept, expected) in table {
            let request = if accept.is_empty() {
                HeaderMap::new()
            } else {
                headers(&[(header::ACCEPT_ENCODING, accept)])
            };
            assert_eq!(negotiate(&request), expected, "{accept:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let table = [
            ("W/\"abc\"", true),
            ("\"abc\"", true),
            ("\"x\", W/\"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("W/\"ab\"", false),
        ];
        for (given, expected) in table {
            let request = headers(&[(header::IF_NONE_MATCH, given)]);
            assert_eq!(none_match(&request, &etag), expected, "{given:?}");
        }
        assert!(!none_match(&HeaderMap::new(), &etag));
    }

    #[test]
    fn the_compressed_forms_decode_to_the_same_bytes() {
        use std::io::Read;
        let body = "<p>status</p>".repeat(500).into_bytes();
        let rendered = Rendered::new("text/html; charset=utf-8", body.clone());
        let mut gunzipped = Vec::new();
        flate2::read::GzDecoder::new(&rendered.gzip[..])
            .read_to_end(&mut gunzipped)
            .unwrap();
        assert_eq!(gunzipped, body);
        let mut unbrotlied = Vec::new();
        brotli::Decompressor::new(&rendered.brotli[..], 4096)
            .read_to_end(&mut unbrotlied)
            .unwrap();
        assert_eq!(unbrotlied, body);
        assert!(rendered.brotli.len() * 5 < body.len());
    }
}
