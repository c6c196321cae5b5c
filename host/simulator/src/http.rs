//! A small HTTP/1.1 server on std's TCP: keep-alive, Content-Length and chunked request bodies,
//! and full control of what goes on the wire (so faults such as a dropped connection or a
//! truncated body can be played).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// The path, still percent-encoded.
    pub path: String,
    /// Query parameters, decoded.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What to put on the wire.
pub enum Reply {
    Respond(HttpResponse),
    /// These bytes, then close the connection (a truncated or dropped answer).
    RawThenClose(Vec<u8>),
    /// Say nothing for this long, then close.
    Stall(Duration),
}

pub type Handler = Arc<dyn Fn(HttpRequest) -> Reply + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

/// TLS for the server, when it serves https.
pub type Tls = Option<Arc<rustls::ServerConfig>>;

impl Server {
    pub fn start(listener: TcpListener, handler: Handler, tls: Tls) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        let accept = std::thread::Builder::new().name("simulator-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                if stop_flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let stop = stop_flag.clone();
                let tls = tls.clone();
                let _ = std::thread::Builder::new().name("simulator-conn".into()).spawn(move || match tls {
                    None => serve_connection(stream, handler, stop),
                    Some(config) => {
                        if let Ok(session) = rustls::ServerConnection::new(config) {
                            serve_connection(rustls::StreamOwned::new(session, stream), handler, stop);
                        }
                    }
                });
            }
        })?;
        Ok(Server { addr, stop, accept: Some(accept), connections })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve_connection<S: Read + Write>(stream: S, handler: Handler, stop: Arc<AtomicBool>) {
    let mut reader = BufReader::new(stream);
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(why) => {
                let response = HttpResponse {
                    status: 400,
                    headers: vec![("Connection".into(), "close".into())],
                    body: why.into_bytes(),
                };
                let _ = reader.get_mut().write_all(&response.to_bytes());
                return;
            }
        };
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let writer = reader.get_mut();
        match handler(request) {
            Reply::Respond(response) => {
                if writer.write_all(&response.to_bytes()).and_then(|()| writer.flush()).is_err() || close {
                    return;
                }
            }
            Reply::RawThenClose(bytes) => {
                let _ = writer.write_all(&bytes);
                let _ = writer.flush();
                return;
            }
            Reply::Stall(duration) => {
                std::thread::sleep(duration);
                return;
            }
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Result<Option<HttpRequest>, String> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| e.to_string());
        match read {
            Ok(0) if head.is_empty() => return Ok(None),
            Ok(0) => return Err("connection closed inside the request head".into()),
            Err(_) if head.is_empty() => return Ok(None),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if head.is_empty() && (line == b"\r\n" || line == b"\n") {
            continue;
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if head.len() > MAX_HEADER_BYTES {
            return Err("request head too large".into());
        }
        if end {
            break;
        }
    }
    let head = String::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = head.lines();
    let request_line = lines.next().ok_or("empty request")?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().ok_or("no method")?.to_string();
    let target = parts.next().ok_or("no target")?.to_string();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers.iter().find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = match find("content-length") {
            Some(v) => v.parse().map_err(|_| "bad Content-Length".to_string())?,
            None => 0,
        };
        if length > MAX_BODY_BYTES {
            return Err("request body too large".into());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
        body
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), parse_query(query)),
        None => (target.clone(), Vec::new()),
    };
    Ok(Some(HttpRequest { method, path, query, headers, body }))
}

fn read_chunked(reader: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| "bad chunk size".to_string())?;
        if size == 0 {
            let mut trailer = String::new();
            while reader.read_line(&mut trailer).map_err(|e| e.to_string())? > 2 {
                trailer.clear();
            }
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err("request body too large".into());
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
        body.extend_from_slice(&chunk[..size]);
    }
}

pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(name), decode_component(value))
        })
        .collect()
}

/// Decodes a query component: `+` is a space, `%XX` a byte.
pub fn decode_component(text: &str) -> String {
    percent_decode(&text.replace('+', " "))
}

/// Decodes `%XX` escapes; bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
