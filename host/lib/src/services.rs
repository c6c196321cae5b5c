//! The host's side of one invocation: the egress rule, HTTP, waiting and logging, bounded by the
//! action's deadline and scrubbed of secrets. It serves the component's imports through the
//! plugin's own [`Host`] trait, so the plugin core compiled natively can run on it too (the
//! benchmarks compare the two).

use crate::config::Limits;
use crate::egress::Authorized;
use crate::egress::EgressPolicy;
use crate::http_client::{HttpClient, Outbound};
use crate::secret::Redactor;
use crate::text::printable;
use soar_types::host::{Host, HttpError, LogLevel, Method, Purpose, Request, Response};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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
    /// Told of every exchange and wait (a trace, a progress line), when there is one.
    pub observer: Option<Arc<dyn Observer>>,
    /// What the action spent before this invocation (waiting for the group's lock, earlier
    /// invocations): `limits.deadline_ms` is what is left, the sum the action's deadline.
    pub spent_ms: u64,
}

/// One HTTP exchange as the host made it, every secret scrubbed: what the request log, the HAR
/// trace and the progress line are made of.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub idp: String,
    pub method: Method,
    pub url: String,
    /// The headers as sent, `Authorization` shown as `Bearer [redacted]`.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<Vec<u8>>,
    pub purpose: Purpose,
    /// When it went out (after any wait for its rate-limit slot), and how long it took.
    pub started: SystemTime,
    pub duration: Duration,
    /// How long it waited for its rate-limit slot first.
    pub queued: Duration,
    /// Whether it reached a server (what `http_requests` counts).
    pub reached_network: bool,
    pub outcome: Result<Response, HttpError>,
}

/// Why an action waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wait {
    /// For a request's slot under the provider's `requests_per_second`.
    RateLimit,
    /// A backoff or a `Retry-After` the plugin waits out before retrying.
    Retry,
}

impl Wait {
    /// What the wait is for, as a person reads it: "for the rate limit".
    pub fn purpose(self) -> &'static str {
        match self {
            Wait::RateLimit => "for the rate limit",
            Wait::Retry => "before retrying",
        }
    }
}

/// Several observers, each told everything.
pub struct Observers(pub Vec<Arc<dyn Observer>>);

impl Observer for Observers {
    fn sending(&self, request: &Request) {
        self.0.iter().for_each(|observer| observer.sending(request));
    }

    fn exchanged(&self, exchange: &Exchange) {
        self.0.iter().for_each(|observer| observer.exchanged(exchange));
    }

    fn waiting(&self, why: Wait, how_long: Duration) {
        self.0.iter().for_each(|observer| observer.waiting(why, how_long));
    }
}

/// Watches an action as it runs; every method has a default that ignores it.
pub trait Observer: Send + Sync {
    /// A request is about to go out.
    fn sending(&self, _request: &Request) {}
    /// An exchange ended, answered or not.
    fn exchanged(&self, _exchange: &Exchange) {}
    /// The action waits `how_long` before going on.
    fn waiting(&self, _why: Wait, _how_long: Duration) {}
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
    /// The exchange is logged (debug) and shown to the observer.
    fn exchange(&self, ready: Ready) -> Result<Response, HttpError> {
        let queued = ready.slot.saturating_duration_since(Instant::now());
        if let Some(observer) = &self.context.observer {
            if !queued.is_zero() {
                observer.waiting(Wait::RateLimit, queued);
            }
            observer.sending(&ready.request);
        }
        let clock = Instant::now();
        let attempt = self.context.http.send(Outbound {
            authorized: &ready.authorized,
            method: ready.request.method,
            headers: &ready.request.headers,
            body: ready.request.body.as_deref(),
            timeout: self.remaining(),
            warn: &|message| self.warn(message),
            slot: Some(ready.slot),
        });
        let duration = clock.elapsed().saturating_sub(queued);
        if attempt.reached_network {
            self.http_requests.fetch_add(1, Ordering::Relaxed);
            if attempt.outcome.is_ok() {
                self.context.http.note_answer_time(&ready.authorized.url, duration);
            }
        }
        let outcome = match attempt.outcome {
            Ok(mut response) => {
                // A server that echoes the token, in any form, must not hand it to the plugin.
                if let Some(scrubbed) = self.redactor().redact_bytes(&response.body) {
                    response.body = scrubbed;
                }
                // Header names are server text too; HTTP lower-cases them.
                for (name, value) in response.headers.iter_mut() {
                    *name = self.redactor().redact_ignoring_case(name);
                    *value = self.redactor().redact(value);
                }
                Ok(response)
            }
            Err(error) => Err(redact_http_error(error, self.redactor())),
        };
        // What is shown of the exchange is built only when someone watches.
        let Some(observer) = &self.context.observer else {
            return outcome;
        };
        let exchange = self.scrubbed_exchange(ready.request, queued, duration, attempt.reached_network, outcome);
        observer.exchanged(&exchange);
        exchange.outcome
    }

    /// The exchange as logs and traces may show it: the token nowhere, whatever its form.
    fn scrubbed_exchange(
        &self,
        request: Request,
        queued: Duration,
        duration: Duration,
        reached_network: bool,
        outcome: Result<Response, HttpError>,
    ) -> Exchange {
        let redactor = self.redactor();
        let mut request_headers: Vec<(String, String)> =
            request.headers.iter().map(|(name, value)| (name.clone(), redactor.redact(value))).collect();
        request_headers.push(("Authorization".into(), "Bearer [redacted]".into()));
        let purpose = Purpose {
            doing: redactor.redact(&request.purpose.doing),
            reason: request.purpose.reason.as_deref().map(|reason| redactor.redact(reason)),
            ..request.purpose
        };
        Exchange {
            url: redactor.redact(&request.url),
            request_body: request.body.map(|body| redactor.redact_bytes(&body).unwrap_or(body)),
            idp: request.idp,
            method: request.method,
            request_headers,
            purpose,
            started: SystemTime::now() - duration,
            duration,
            queued,
            reached_network,
            outcome,
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

/// The request log: one debug line per exchange into a log sink (`SOAR_HOST_LOG=debug` in the
/// CLI): provider, method, path and query, status or error, time, size, attempt and why it was
/// sent. Never a body, never a header.
pub struct RequestLog(pub LogSink);

impl Observer for RequestLog {
    fn exchanged(&self, exchange: &Exchange) {
        let target = match url::Url::parse(&exchange.url) {
            Ok(url) => match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            },
            Err(_) => exchange.url.clone(),
        };
        let answer = match &exchange.outcome {
            Ok(response) => format!("{} ({} bytes)", response.status, response.body.len()),
            Err(error) => describe_http_error(error),
        };
        let mut line = format!(
            "[{}] {} {target} -> {answer} in {} ms",
            exchange.idp,
            exchange.method.as_str(),
            exchange.duration.as_millis()
        );
        if !exchange.queued.is_zero() {
            line.push_str(&format!(" after {} ms for the rate limit", exchange.queued.as_millis()));
        }
        if exchange.purpose.attempt > 1 {
            line.push_str(&format!(", attempt {}", exchange.purpose.attempt));
        }
        if let Some(reason) = &exchange.purpose.reason {
            line.push_str(&format!(", because {reason}"));
        }
        if !exchange.purpose.doing.is_empty() {
            line.push_str(&format!(": {}", exchange.purpose.doing));
        }
        (self.0)(&LogRecord { level: LogLevel::Debug, message: printable(&line).into_owned() });
    }
}

impl Host for HostServices {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let ready = self.prepare(request)?;
        self.exchange(ready)
    }

    /// Runs the requests concurrently (one after another to a provider that answers within
    /// [`crate::http_client::QUICK_ANSWER`], where overlapping costs more than it saves): per
    /// provider at most its `max_concurrent_requests` at once (a few worker threads take the requests in turn, in waves when there are more), each
    /// request through the egress rule alone and at its rate-limit slot, within the deadline.
    fn send_all(&mut self, mut requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        if requests.len() == 1 {
            // Most batches of a small action hold one request: no queue, no worker.
            return requests.pop().map(|request| self.send(request)).into_iter().collect();
        }
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
                let quick =
                    queue.first().is_some_and(|(_, ready)| self.context.http.answers_quickly(&ready.authorized.url));
                let limit = if quick { 1 } else { self.context.egress.max_concurrent_requests(&idp) };
                let workers = limit.min(queue.len());
                (Mutex::new(queue.into_iter()), workers)
            })
            .collect();
        let services = &*self;
        let answered_ref = &answered;
        let extra_workers = queues.iter().map(|(_, workers)| *workers).sum::<usize>() > 1;
        match self.context.http.workers().filter(|_| extra_workers) {
            Some(pool) => pool.in_place_scope(|scope| {
                // One worker runs on this thread, which would otherwise only wait.
                let mut here = None;
                for (queue, workers) in &queues {
                    for _ in 0..*workers {
                        match here {
                            None => here = Some(queue),
                            Some(_) => scope.spawn(move |_| services.work(queue, answered_ref)),
                        }
                    }
                }
                if let Some(queue) = here {
                    services.work(queue, answered_ref);
                }
            }),
            None => queues.iter().for_each(|(queue, _)| services.work(queue, answered_ref)),
        }
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
        if let Some(observer) = &self.context.observer {
            observer.waiting(Wait::Retry, wanted);
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

/// An error as the request log and the trace name it: "timeout: ...".
pub fn describe_http_error(error: &HttpError) -> String {
    let (kind, why) = match error {
        HttpError::Denied(why) => ("denied", why),
        HttpError::Timeout(why) => ("timeout", why),
        HttpError::ConnectionFailed(why) => ("connection failed", why),
        HttpError::TlsFailed(why) => ("TLS failed", why),
        HttpError::TooLarge(why) => ("too large", why),
    };
    format!("{kind}: {why}")
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
