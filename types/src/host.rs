//! What the plugin needs from whoever runs it: HTTP, a way to wait, a log. The component layer
//! implements it with the WIT imports; unit tests and native benchmarks implement it directly.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub idp: String,
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Why it is sent: for the host's request log and trace, never for the server.
    pub purpose: Purpose,
}

/// Why a request is sent (WIT `http.purpose`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purpose {
    /// What the plugin is doing: "looking up user alice@corp.example".
    pub doing: String,
    /// 1 for the first try; 2 and up when the same request is sent again (0: not said).
    pub attempt: u32,
    /// Why it is sent, when it is a retry or another form of a refused request.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Why a request got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    Denied(String),
    Timeout(String),
    ConnectionFailed(String),
    TlsFailed(String),
    TooLarge(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

pub trait Host {
    fn send(&mut self, request: Request) -> Result<Response, HttpError>;
    /// Sends independent requests at once; the answers come back in the same order. A host
    /// runs them concurrently (WIT `http.send-all`); this default sends them one by one.
    fn send_all(&mut self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        requests.into_iter().map(|request| self.send(request)).collect()
    }
    /// Waits, unless the action's deadline comes first: then returns false at once.
    fn sleep(&mut self, duration_ms: u64) -> bool;
    fn log(&mut self, level: LogLevel, message: &str);
}
