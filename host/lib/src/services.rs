//! The host's side of one invocation: the egress rule, HTTP, waiting and logging, bounded by the
//! action's deadline and scrubbed of secrets. It serves the component's imports through the
//! plugin's own [`Host`] trait, so the plugin core compiled natively can run on it too (the
//! benchmarks compare the two).

use crate::config::Limits;
use crate::egress::Authorized;
use crate::egress::EgressPolicy;
use crate::http_client::{HttpClient, Outbound};
use crate::secret::Redactor;
use soar_types::host::{Host, HttpError, LogLevel, Request, Response};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Requests that reached a server; counted from the threads of `send-all` too.
    http_requests: AtomicU32,
    log_lines: AtomicUsize,
}

/// The requests of one provider in a `send-all`, numbered as they were asked, taken in turn.
type WorkQueue = Mutex<std::vec::IntoIter<(usize, Ready)>>;

/// A request that passed the egress rule and holds its rate-limit slot, ready to go.
struct Ready {
    request: Request,
    authorized: Authorized,
    slot: Instant,
}

impl HostServices {
    pub fn new(context: &InvocationContext, deadline: Instant) -> Self {
        HostServices {
            context: context.clone(),
            deadline,
            http_requests: AtomicU32::new(0),
            log_lines: AtomicUsize::new(0),
        }
    }

    /// Requests that reached a server (those refused before a connection, or that never got
    /// one, are not counted).
    pub fn http_requests(&self) -> u32 {
        self.http_requests.load(Ordering::Relaxed)
    }

    pub fn redactor(&self) -> &Redactor {
        self.context.egress.redactor()
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn warn(&self, message: String) {
        self.write_log(LogLevel::Warn, &message);
    }

    /// The egress rule, then a rate-limit slot: both decided before anything is sent, in the
    /// order of the requests.
    fn prepare(&self, request: Request) -> Result<Ready, HttpError> {
        let authorized = match self.context.egress.authorize(&request.idp, &request.url, &request.headers) {
            Ok(authorized) => authorized,
            Err(denied) => {
                let why = self.redactor().redact(&denied.to_string());
                self.warn(format!("denied {} {}: {why}", request.method.as_str(), request.url));
                return Err(HttpError::Denied(why));
            }
        };
        let wait = self
            .context
            .http
            .reserve(&authorized.url, self.remaining(), &|message| self.warn(message))
            .map_err(|error| redact_http_error(error, self.redactor()))?;
        Ok(Ready { request, authorized, slot: Instant::now() + wait })
    }

    /// Sends a prepared request at its slot; the answer is scrubbed of every form of the token.
    fn exchange(&self, ready: Ready) -> Result<Response, HttpError> {
        let attempt = self.context.http.send(Outbound {
            authorized: &ready.authorized,
            method: ready.request.method,
            headers: &ready.request.headers,
            body: ready.request.body.as_deref(),
            timeout: self.remaining(),
            warn: &|message| self.warn(message),
            slot: Some(ready.slot),
        });
        if attempt.reached_network {
            self.http_requests.fetch_add(1, Ordering::Relaxed);
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

    /// A log line from the plugin or the host, bounded in number and length, never with a secret.
    fn write_log(&self, level: LogLevel, message: &str) {
        let line = self.log_lines.fetch_add(1, Ordering::Relaxed) + 1;
        if line > MAX_LOG_LINES + 1 {
            return;
        }
        let message = if line == MAX_LOG_LINES + 1 {
            format!("the plugin logged more than {MAX_LOG_LINES} lines; the rest are dropped")
        } else {
            let text: String = message.chars().take(MAX_LOG_LINE_CHARS).collect();
            self.redactor().redact(&text)
        };
        (self.context.log)(&LogRecord { level, message });
    }
}

impl Host for HostServices {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let ready = self.prepare(request)?;
        self.exchange(ready)
    }

    /// Runs the requests concurrently: per provider at most its `max_concurrent_requests` at
    /// once (a few worker threads take the requests in turn, in waves when there are more), each
    /// request through the egress rule alone and at its rate-limit slot, within the deadline.
    fn send_all(&mut self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        let count = requests.len();
        let mut answers: Vec<Option<Result<Response, HttpError>>> = (0..count).map(|_| None).collect();
        let mut queues: Vec<(String, Vec<(usize, Ready)>)> = Vec::new();
        for (index, request) in requests.into_iter().enumerate() {
            let idp = request.idp.clone();
            match self.prepare(request) {
                Err(error) => answers[index] = Some(Err(error)),
                Ok(ready) => match queues.iter_mut().find(|(name, _)| *name == idp) {
                    Some((_, queue)) => queue.push((index, ready)),
                    None => queues.push((idp, vec![(index, ready)])),
                },
            }
        }
        let answered = Mutex::new(answers);
        let queues: Vec<(WorkQueue, usize)> = queues
            .into_iter()
            .map(|(idp, queue)| {
                let workers = self.context.egress.max_concurrent_requests(&idp).min(queue.len());
                (Mutex::new(queue.into_iter()), workers)
            })
            .collect();
        let services = &*self;
        let answered_ref = &answered;
        std::thread::scope(|scope| {
            // One worker runs on this thread: a lone request needs no other.
            let mut here = None;
            for (queue, workers) in &queues {
                for _ in 0..*workers {
                    match here {
                        None => here = Some(queue),
                        Some(_) => {
                            scope.spawn(move || services.work(queue, answered_ref));
                        }
                    }
                }
            }
            if let Some(queue) = here {
                services.work(queue, answered_ref);
            }
        });
        answered
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| Err(HttpError::ConnectionFailed("the request was not sent".into()))))
            .collect()
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
        self.write_log(level, message);
    }
}

impl HostServices {
    /// One worker of `send_all`: takes requests in turn until none is left.
    fn work(&self, queue: &WorkQueue, answered: &Mutex<Vec<Option<Result<Response, HttpError>>>>) {
        loop {
            let next = queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).next();
            let Some((index, ready)) = next else { return };
            let answer = self.exchange(ready);
            answered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[index] = Some(answer);
        }
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
