//! The host's side of one invocation: the egress rule, HTTP, waiting and logging, bounded by the
//! action's deadline and scrubbed of secrets. It serves the component's imports through the
//! plugin's own [`Host`] trait, so the plugin core compiled natively can run on it too (the
//! benchmarks compare the two).

use crate::config::Limits;
use crate::egress::EgressPolicy;
use crate::http_client::{HttpClient, Outbound};
use crate::secret::Redactor;
use soar_types::host::{Host, HttpError, LogLevel, Request, Response};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One log line from the plugin (or about it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
}

pub type LogSink = Arc<dyn Fn(&LogRecord) + Send + Sync>;

/// What one action needs besides its input.
#[derive(Clone)]
pub struct InvocationContext {
    pub egress: Arc<EgressPolicy>,
    pub http: Arc<HttpClient>,
    pub limits: Limits,
    pub log: LogSink,
}

/// Log lines kept per invocation, and characters per line.
pub const MAX_LOG_LINES: usize = 1_000;
pub const MAX_LOG_LINE_CHARS: usize = 2_000;

pub struct HostServices {
    context: InvocationContext,
    deadline: Instant,
    http_requests: u32,
    log_lines: usize,
}

impl HostServices {
    pub fn new(context: &InvocationContext, deadline: Instant) -> Self {
        HostServices { context: context.clone(), deadline, http_requests: 0, log_lines: 0 }
    }

    /// Requests that went out (those refused before a connection are not counted).
    pub fn http_requests(&self) -> u32 {
        self.http_requests
    }

    pub fn redactor(&self) -> &Redactor {
        self.context.egress.redactor()
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl Host for HostServices {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let authorized = match self.context.egress.authorize(&request.idp, &request.url, &request.headers) {
            Ok(authorized) => authorized,
            Err(denied) => {
                let why = self.redactor().redact(&denied.to_string());
                self.log(LogLevel::Warn, &format!("denied {} {}: {why}", request.method.as_str(), request.url));
                return Err(HttpError::Denied(why));
            }
        };
        let log = self.context.log.clone();
        let warn = move |message: String| log(&LogRecord { level: LogLevel::Warn, message });
        let attempt = self.context.http.send(Outbound {
            authorized: &authorized,
            method: request.method,
            headers: &request.headers,
            body: request.body.as_deref(),
            timeout: self.remaining(),
            warn: &warn,
        });
        if attempt.reached_network {
            self.http_requests += 1;
        }
        match attempt.outcome {
            Ok(mut response) => {
                // A server that echoes the token, in any form, must not hand it to the plugin.
                if let Some(scrubbed) = self.redactor().redact_bytes(&response.body) {
                    response.body = scrubbed;
                }
                for (_, value) in response.headers.iter_mut() {
                    *value = self.redactor().redact(value);
                }
                Ok(response)
            }
            Err(error) => Err(redact_http_error(error, self.redactor())),
        }
    }

    /// Waits, unless the deadline would pass first: then returns false at once.
    fn sleep(&mut self, duration_ms: u64) -> bool {
        let wanted = Duration::from_millis(duration_ms);
        if wanted > self.remaining() {
            return false;
        }
        std::thread::sleep(wanted);
        true
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES + 1 {
            return;
        }
        let message = if self.log_lines == MAX_LOG_LINES + 1 {
            format!("the plugin logged more than {MAX_LOG_LINES} lines; the rest are dropped")
        } else {
            let text: String = message.chars().take(MAX_LOG_LINE_CHARS).collect();
            self.redactor().redact(&text)
        };
        (self.context.log)(&LogRecord { level, message });
    }
}

fn redact_http_error(error: HttpError, redactor: &Redactor) -> HttpError {
    match error {
        HttpError::Denied(why) => HttpError::Denied(redactor.redact(&why)),
        HttpError::Timeout(why) => HttpError::Timeout(redactor.redact(&why)),
        HttpError::ConnectionFailed(why) => HttpError::ConnectionFailed(redactor.redact(&why)),
        HttpError::TlsFailed(why) => HttpError::TlsFailed(redactor.redact(&why)),
        HttpError::TooLarge(why) => HttpError::TooLarge(redactor.redact(&why)),
    }
}
