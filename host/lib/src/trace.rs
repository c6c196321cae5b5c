//! The action's exchanges as an HTTP Archive (HAR 1.2), the format browser tools, proxies and
//! support teams open: one entry per request that reached a server (as many as `http_requests`),
//! headers and bodies as the host saw them with every form of the token scrubbed, bodies capped
//! at 64 KiB. The file is opened before anything is sent and written when the action ends.

use crate::files::{self, FileError};
use crate::services::{describe_http_error, Exchange, Observer};
use serde_json::{json, Value};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes of a request or response body kept in the trace.
pub const MAX_TRACE_BODY_BYTES: usize = 64 * 1024;

/// Keeps the exchanges that reached a server, in the order they ended.
#[derive(Default)]
pub struct Recorder {
    exchanges: Mutex<Vec<Exchange>>,
}

impl Observer for Recorder {
    fn exchanged(&self, exchange: &Exchange) {
        if exchange.reached_network {
            self.exchanges.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(exchange.clone());
        }
    }
}

impl Recorder {
    /// The HAR document of what was recorded, `creator` naming the host and its version.
    pub fn har(&self, creator: (&str, &str)) -> Value {
        let mut exchanges = self.exchanges.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        exchanges.sort_by_key(|exchange| exchange.started);
        json!({"log": {
            "version": "1.2",
            "creator": {"name": creator.0, "version": creator.1},
            "pages": [],
            "entries": exchanges.iter().map(entry).collect::<Vec<_>>(),
        }})
    }
}

fn entry(exchange: &Exchange) -> Value {
    let millis = |duration: std::time::Duration| duration.as_secs_f64() * 1e3;
    let query: Vec<Value> = url::Url::parse(&exchange.url)
        .map(|url| url.query_pairs().map(|(name, value)| json!({"name": name, "value": value})).collect())
        .unwrap_or_default();
    let mut request = json!({
        "method": exchange.method.as_str(),
        "url": exchange.url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": headers(&exchange.request_headers),
        "queryString": query,
        "headersSize": -1,
        "bodySize": exchange.request_body.as_ref().map_or(0, Vec::len),
    });
    if let Some(body) = &exchange.request_body {
        let mime = header(&exchange.request_headers, "content-type").unwrap_or("application/octet-stream");
        request["postData"] = body_text(mime, body);
    }
    let (response, error) = match &exchange.outcome {
        Ok(response) => {
            let mime = header(&response.headers, "content-type").unwrap_or("x-unknown");
            let mut content = body_text(mime, &response.body);
            content["size"] = json!(response.body.len());
            let reason = http::StatusCode::from_u16(response.status).ok().and_then(|code| code.canonical_reason());
            let shown = json!({
                "status": response.status,
                "statusText": reason.unwrap_or(""),
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": headers(&response.headers),
                "content": content,
                "redirectURL": header(&response.headers, "location").unwrap_or(""),
                "headersSize": -1,
                "bodySize": response.body.len(),
            });
            (shown, None)
        }
        // Reached the server, but no complete answer came back (a timeout, a cut connection).
        Err(error) => {
            let shown = json!({
                "status": 0, "statusText": "", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                "content": {"size": 0, "mimeType": "x-unknown"}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
            });
            (shown, Some(describe_http_error(error)))
        }
    };
    json!({
        "startedDateTime": humantime::format_rfc3339_millis(exchange.started).to_string(),
        "time": millis(exchange.queued) + millis(exchange.duration),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"blocked": millis(exchange.queued), "dns": -1, "connect": -1, "send": 0,
                    "wait": millis(exchange.duration), "receive": 0, "ssl": -1},
        "_idp": exchange.idp,
        "_doing": exchange.purpose.doing,
        "_attempt": exchange.purpose.attempt,
        "_reason": exchange.purpose.reason,
        "_error": error,
    })
}

fn headers(headers: &[(String, String)]) -> Vec<Value> {
    headers.iter().map(|(name, value)| json!({"name": name, "value": value})).collect()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// A body as HAR text, its first [`MAX_TRACE_BODY_BYTES`] bytes (on a character boundary).
fn body_text(mime: &str, body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(MAX_TRACE_BODY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut shown = json!({"mimeType": mime, "text": &text[..end]});
    if end < text.len() {
        shown["comment"] = json!(format!("the first {end} of {} bytes", body.len()));
    }
    shown
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    #[error("--trace {}: cannot write there ({source}); name a regular file in a folder you can write", path.display())]
    Open { path: PathBuf, source: FileError },
    #[error("--trace {}: writing the trace failed ({source})", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// The trace's file: opened (created owner-only, never through a link) before the action, so
/// that an unusable path refuses it before anything is sent; written over when it ends.
pub struct TraceFile {
    path: PathBuf,
    file: std::fs::File,
}

impl TraceFile {
    pub fn create(path: &Path) -> Result<TraceFile, TraceError> {
        let file =
            files::open_to_replace(path).map_err(|source| TraceError::Open { path: path.to_path_buf(), source })?;
        Ok(TraceFile { path: path.to_path_buf(), file })
    }

    pub fn write(&mut self, har: &Value) -> Result<(), TraceError> {
        let failed = |source| TraceError::Write { path: self.path.clone(), source };
        let text = serde_json::to_vec_pretty(har).expect("JSON serialises");
        self.file.set_len(0).map_err(failed)?;
        self.file.rewind().map_err(failed)?;
        self.file.write_all(&text).map_err(failed)?;
        self.file.sync_all().map_err(failed)
    }
}
