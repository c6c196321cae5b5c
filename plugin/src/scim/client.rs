//! One provider's SCIM endpoint: sends requests through the host, retries what is worth
//! retrying, and turns failures into typed errors a playbook can branch on.

use crate::scim::response::{is_json_content_type, parse_error_body, quote, retry_after_ms};
use serde_json::Value;
use soar_types::host::{Host, HttpError, LogLevel, Method, Purpose, Request, Response};
use soar_types::model::{ActionError, ErrorKind, Profile, Provider};

const SCIM_JSON: &str = "application/scim+json";
const ACCEPT: &str = "application/scim+json, application/json";
const BACKOFF_BASE_MS: u64 = 500;
const BACKOFF_MAX_MS: u64 = 8_000;
/// A 409 on a write that a server uses as a lock is retried after this long.
const LOCK_RETRY_MS: u64 = 1_000;

/// What the client learns about a server during one action, so it asks each question once.
#[derive(Debug, Default)]
pub struct Learned {
    /// A filtered query came back with resources that do not match: filters cannot be trusted.
    pub filters_ignored: bool,
    /// `GET /Users?filter=...` is refused (400 invalidFilter, 501).
    pub user_filter_rejected: bool,
    /// `or` in a user filter is refused or misread.
    pub or_filter_unusable: bool,
    /// `id eq .. or ..` on users is refused or misread: users are read by id one by one.
    pub id_filter_unusable: bool,
    /// `filter=id eq ".." and members[value eq ".."]` is refused or misread.
    pub membership_filter_unusable: bool,
    /// The membership filter was asked about a member no server holds and did not find it.
    pub member_clause_honoured: bool,
    /// The group's `members`, once read: `Some(None)` when the server does not list them.
    pub group_members: Option<Option<Vec<String>>>,
    /// Whether this server was seen to list a group's members, and why: a group that leaves
    /// `members` out is then empty (RFC 7643 §2.5), not unreadable. Looked for once an action.
    pub members_listed: Option<Option<String>>,
    /// Reading every user (a few pages) costs fewer requests than filtering for these users.
    pub read_every_user: bool,
    /// The add form that worked: `path: members` (false) or ZIA's path-less form (true).
    pub add_without_path: bool,
    /// The remove form that worked: RFC `members[value eq ".."]` (false) or Entra's value list (true).
    pub remove_with_value_list: bool,
    /// `attributes` / `excludedAttributes` are refused (400): reads go without them.
    pub projection_refused: bool,
}

pub struct ScimClient<'a, H: Host> {
    host: &'a mut H,
    pub provider: &'a Provider,
    pub learned: Learned,
    base: String,
    retry_after_cap_ms: u64,
    /// Once the provider fails in a way every later request would share (bad token, TLS,
    /// deadline), later requests fail at once with the same error instead of being sent.
    fatal: Option<ActionError>,
    /// Answers sent ahead for the steps to come (see [`ScimClient::prefetch`]).
    prefetched: Vec<(Outgoing, Result<Sent, ActionError>)>,
    /// Why the next requests are sent, when a refusal or an ignored filter made them the way on.
    reason_for_next: Option<String>,
}

/// A request the client sends, and how its failures are treated.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    pub body: Option<Vec<u8>>,
    /// A change: only refusals are retried, and a lost answer comes back as [`Sent::MaybeApplied`].
    pub change: bool,
    /// A 409 is a lock worth waiting for.
    pub lock_retry: bool,
    /// What the request is for, in messages: "looking up user alice@corp.example".
    pub doing: String,
    /// Why it is sent when it stands in for a refused form, for the host's request log.
    pub reason: Option<String>,
}

impl Outgoing {
    pub fn read(path_and_query: &str, doing: Doing) -> Self {
        Outgoing {
            method: Method::Get,
            path_and_query: path_and_query.to_string(),
            body: None,
            change: false,
            lock_retry: false,
            doing: doing.to_string(),
            reason: None,
        }
    }

    /// The same request, sent because of `reason` (another form after a refusal, say).
    pub fn because(mut self, reason: String) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn change(method: Method, path: &str, body: &Value, lock_retry: bool, doing: Doing) -> Self {
        Outgoing {
            method,
            path_and_query: path.to_string(),
            body: Some(serde_json::to_vec(body).expect("a JSON value serialises")),
            change: true,
            lock_retry,
            doing: doing.to_string(),
            reason: None,
        }
    }

    fn same_request(&self, other: &Outgoing) -> bool {
        self.method == other.method && self.path_and_query == other.path_and_query && self.body == other.body
    }
}

/// How a change ended.
#[derive(Clone, Debug)]
pub enum Sent {
    /// The server's final answer, whatever its status.
    Answer(Response),
    /// No answer (a dropped connection, a gateway's 502 or 504), so the change may or may not
    /// have been applied: wait `wait_ms`, then read before sending it again.
    MaybeApplied { error: ActionError, wait_ms: u64 },
}

/// How a failed answer is described: "looking up user alice@corp.example".
pub type Doing<'s> = &'s str;

impl<'a, H: Host> ScimClient<'a, H> {
    pub fn new(host: &'a mut H, provider: &'a Provider, retry_after_cap_ms: u64) -> Self {
        // ZIA documents only the path-less add: start with it there.
        let learned = Learned { add_without_path: provider.profile == Profile::Zia, ..Learned::default() };
        ScimClient {
            host,
            provider,
            learned,
            base: provider.base_url.trim_end_matches('/').to_string(),
            retry_after_cap_ms,
            fatal: None,
            prefetched: Vec::new(),
            reason_for_next: None,
        }
    }

    pub fn idp(&self) -> &str {
        &self.provider.name
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        let message = format!("[{}] {message}", self.provider.name);
        self.host.log(level, &message);
    }

    /// The URL of `path_and_query` (`/Users?filter=...`) under the base URL.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Sends a GET, retrying 429, 502, 503, 504 and connection failures with backoff. Returns
    /// any answer the server finally gave, whatever its status, or the error that kept it from
    /// answering.
    pub fn send_read(&mut self, path_and_query: &str, doing: Doing) -> Result<Response, ActionError> {
        self.read(Outgoing::read(path_and_query, doing))
    }

    /// [`Self::send_read`] of a request that stands in for a refused one.
    pub fn send_read_because(
        &mut self,
        path_and_query: &str,
        doing: Doing,
        reason: &str,
    ) -> Result<Response, ActionError> {
        self.read(Outgoing::read(path_and_query, doing).because(reason.to_string()))
    }

    fn read(&mut self, outgoing: Outgoing) -> Result<Response, ActionError> {
        match self.send_one(outgoing)? {
            Sent::Answer(response) => Ok(response),
            Sent::MaybeApplied { error, .. } => Err(error),
        }
    }

    /// Says why the next requests sent are sent (the fallback a refusal leads to), for the
    /// host's request log; requests that carry their own reason keep it.
    pub fn explain_next(&mut self, reason: &str) {
        self.reason_for_next = Some(reason.to_string());
    }

    /// Sends a change. Retries only what the server cannot have acted on (429, 503, and a 409
    /// lock when `lock_retry` is set); a dropped connection or a gateway's 502/504 comes back as
    /// [`Sent::MaybeApplied`], because resending blindly could store a duplicate member.
    pub fn send_change(&mut self, outgoing: Outgoing) -> Result<Sent, ActionError> {
        self.send_one(outgoing)
    }

    /// One request: its answer sent ahead (see [`ScimClient::prefetch`]), or sent now.
    fn send_one(&mut self, outgoing: Outgoing) -> Result<Sent, ActionError> {
        if let Some(index) = self.prefetched.iter().position(|(sent, _)| sent.same_request(&outgoing)) {
            return self.prefetched.swap_remove(index).1;
        }
        self.send_batch(vec![outgoing]).pop().expect("one answer per request")
    }

    /// Sends a request (or takes its answer sent ahead) and keeps the answer for the step that
    /// will make it: a look at what is coming, at no extra request.
    pub fn peek(&mut self, outgoing: Outgoing) -> Result<Sent, ActionError> {
        let answer = self.send_one(outgoing.clone());
        self.prefetched.push((outgoing, answer.clone()));
        answer
    }

    /// Sends requests that the steps to come will make, all at once, and keeps their answers
    /// for them: the steps keep their order and their fallbacks, and independent requests cost
    /// one round trip together. Requests already answered ahead are not sent again.
    pub fn prefetch(&mut self, batch: Vec<Outgoing>) {
        let mut fresh: Vec<Outgoing> = Vec::new();
        for outgoing in batch {
            let known = self.prefetched.iter().any(|(sent, _)| sent.same_request(&outgoing))
                || fresh.iter().any(|other| other.same_request(&outgoing));
            if !known {
                fresh.push(outgoing);
            }
        }
        if fresh.len() > 1 && self.fatal.is_none() {
            let answers = self.send_batch(fresh.clone());
            self.prefetched.extend(fresh.into_iter().zip(answers));
        }
    }

    /// Sends independent requests together (the host runs them concurrently), each retried as
    /// a lone request would be; the answers come back in order.
    fn send_batch(&mut self, batch: Vec<Outgoing>) -> Vec<Result<Sent, ActionError>> {
        let mut ended: Vec<Option<Result<Sent, ActionError>>> = vec![None; batch.len()];
        let mut attempts = vec![0u32; batch.len()];
        let explained = self.reason_for_next.take();
        let mut reasons: Vec<Option<String>> =
            batch.iter().map(|outgoing| outgoing.reason.clone().or_else(|| explained.clone())).collect();
        let mut pending: Vec<usize> = (0..batch.len()).collect();
        while !pending.is_empty() {
            if let Some(fatal) = &self.fatal {
                for &index in &pending {
                    ended[index] = Some(Err(fatal.clone()));
                }
                break;
            }
            let requests = pending
                .iter()
                .map(|&index| {
                    let purpose = Purpose {
                        doing: batch[index].doing.clone(),
                        attempt: attempts[index] + 1,
                        reason: reasons[index].clone(),
                    };
                    self.request(&batch[index], purpose)
                })
                .collect();
            let outcomes = self.host.send_all(requests);
            let mut retrying: Vec<(usize, u64, Result<Response, HttpError>)> = Vec::new();
            for (&index, outcome) in pending.iter().zip(outcomes) {
                let outgoing = &batch[index];
                let doing = outgoing.doing.as_str();
                let wait_ms = match &outcome {
                    Ok(response) => self.retry_wait(response, attempts[index], outgoing.lock_retry),
                    Err(HttpError::ConnectionFailed(_)) => Some(backoff_ms(attempts[index], &outgoing.path_and_query)),
                    Err(_) => None,
                };
                ended[index] = match wait_ms {
                    None => Some(self.finish(outcome, doing).map(Sent::Answer)),
                    Some(wait_ms) if outgoing.change && may_have_been_applied(&outcome) => {
                        let why = "the server's own answer never came, so the change may have been applied";
                        Some(Ok(Sent::MaybeApplied { error: self.give_up(outcome, None, doing, why), wait_ms }))
                    }
                    Some(_) if attempts[index] >= self.provider.max_retries => {
                        let tries = attempts[index] + 1;
                        let why = format!("after {tries} attempt{}", if tries == 1 { "" } else { "s" });
                        let error = self.give_up(outcome, None, doing, &why);
                        Some(Err(self.remember_if_fatal(error)))
                    }
                    Some(wait_ms) => {
                        retrying.push((index, wait_ms, outcome));
                        None
                    }
                };
            }
            // One wait for the whole round: the longest any answer asked for.
            let Some(wait_ms) = retrying.iter().map(|(_, wait_ms, _)| *wait_ms).max() else {
                break;
            };
            for (index, _, outcome) in &retrying {
                let said = describe_attempt(outcome);
                self.log(LogLevel::Warn, &format!("{}: {said}; retrying in {wait_ms} ms", batch[*index].doing));
                reasons[*index] = Some(format!("retry after {said}"));
            }
            if !self.host.sleep(wait_ms) {
                for (index, wait_ms, outcome) in retrying {
                    let why = "the action's deadline comes before the retry";
                    let error = self.give_up(outcome, Some(wait_ms), &batch[index].doing, why);
                    ended[index] = Some(Err(self.remember_if_fatal(error)));
                }
                break;
            }
            pending = retrying.into_iter().map(|(index, _, _)| index).collect();
            for &index in &pending {
                attempts[index] += 1;
            }
        }
        ended.into_iter().map(|answer| answer.expect("every request ended")).collect()
    }

    /// The host request for an outgoing one.
    fn request(&self, outgoing: &Outgoing, purpose: Purpose) -> Request {
        let mut headers = vec![("Accept".to_string(), ACCEPT.to_string())];
        if outgoing.body.is_some() {
            headers.push(("Content-Type".to_string(), SCIM_JSON.to_string()));
        }
        Request {
            idp: self.provider.name.clone(),
            method: outgoing.method,
            url: self.url(&outgoing.path_and_query),
            headers,
            body: outgoing.body.clone(),
            purpose,
        }
    }

    /// Waits before checking and resending a change whose answer was lost; false when the
    /// action's deadline comes first.
    pub fn wait_before_resending(&mut self, wait_ms: u64, doing: Doing) -> bool {
        self.log(
            LogLevel::Warn,
            &format!("{doing}: checking membership in {wait_ms} ms before sending the change again"),
        );
        self.host.sleep(wait_ms)
    }

    /// A final answer: auth failures and redirects are errors here, every other status is the
    /// caller's to judge.
    fn finish(&mut self, outcome: Result<Response, HttpError>, doing: Doing) -> Result<Response, ActionError> {
        let error = match outcome {
            Ok(response) if is_auth_failure(response.status) || (300..400).contains(&response.status) => {
                self.status_error(&response, doing)
            }
            Ok(response) if encoded(&response).is_some() => {
                let encoding = encoded(&response).unwrap_or_default();
                ActionError::new(
                    ErrorKind::Protocol,
                    format!(
                        "{}: answered HTTP {} encoded as {} (Content-Encoding), which was not asked for, while {doing}; \
                         the answer cannot be read: the server or a proxy before it must send plain answers",
                        self.idp(),
                        response.status,
                        quote(encoding)
                    ),
                )
                .with_status(response.status)
            }
            Ok(response) => return Ok(response),
            Err(error) => self.transport_error(error, doing),
        };
        Err(self.remember_if_fatal(error))
    }

    /// How long to wait before retrying this answer, if it is worth retrying.
    fn retry_wait(&self, response: &Response, attempt: u32, lock_retry: bool) -> Option<u64> {
        match response.status {
            429 | 502 | 503 | 504 => Some(match retry_after_ms(response) {
                Some(asked) => asked.min(self.retry_after_cap_ms),
                None => backoff_ms(attempt, &self.base),
            }),
            409 if lock_retry => Some(LOCK_RETRY_MS),
            _ => None,
        }
    }

    /// The error for a retryable failure that we stop retrying.
    fn give_up(
        &self,
        outcome: Result<Response, HttpError>,
        wait_ms: Option<u64>,
        doing: Doing,
        why: &str,
    ) -> ActionError {
        match outcome {
            Ok(response) => {
                let mut error = self.status_error(&response, doing);
                error.message = format!("{} ({why})", error.message);
                if response.status == 429 {
                    // What the server asked for, within the cap the host honours.
                    error.retry_after_ms =
                        retry_after_ms(&response).map(|asked| asked.min(self.retry_after_cap_ms)).or(wait_ms);
                }
                error
            }
            Err(error) => {
                let mut error = self.transport_error(error, doing);
                error.message = format!("{} ({why})", error.message);
                error
            }
        }
    }

    pub(super) fn remember_if_fatal(&mut self, error: ActionError) -> ActionError {
        if is_fatal(error.kind) && self.fatal.is_none() {
            self.fatal = Some(error.clone());
        }
        error
    }

    /// The typed error for an answer that is not a success.
    pub fn status_error(&self, response: &Response, doing: Doing) -> ActionError {
        let idp = self.idp();
        let status = response.status;
        let server = parse_error_body(&response.body);
        let (kind, message) = match status {
            401 | 403 => (
                ErrorKind::AuthFailed,
                format!(
                    "{idp}: the SCIM server refused the bearer token (HTTP {status}) while {doing}; \
                     check the provider's token and that SCIM is enabled for this identity provider"
                ),
            ),
            300..=399 => {
                let location = response.header("location").map(quote).unwrap_or_else(|| "nowhere".into());
                (
                    ErrorKind::Redirect,
                    format!(
                        "{idp}: the server answered HTTP {status} redirecting to {location} while {doing}; \
                         redirects are not followed: set base_url to the SCIM endpoint itself"
                    ),
                )
            }
            429 => (
                ErrorKind::RateLimited,
                format!("{idp}: the SCIM server is throttling requests (HTTP 429) while {doing}"),
            ),
            _ => {
                let said = server.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                (ErrorKind::Server, format!("{idp}: HTTP {status} while {doing}{said}"))
            }
        };
        ActionError::new(kind, message).with_status(status).with_detail(server.detail)
    }

    fn transport_error(&self, error: HttpError, doing: Doing) -> ActionError {
        let idp = self.idp();
        let (kind, what, advice) = match error {
            HttpError::Denied(why) => (ErrorKind::Denied, why, "the host's egress policy refused it"),
            HttpError::Timeout(why) => (ErrorKind::Timeout, why, "no answer in time"),
            HttpError::ConnectionFailed(why) => {
                (ErrorKind::Transport, why, "check base_url and the network path to the SCIM server")
            }
            HttpError::TlsFailed(why) => {
                (ErrorKind::Tls, why, "TLS failed: the server's certificate is not trusted or the handshake broke; if a private CA issued it, put that CA's PEM certificate in the host's ca_file")
            }
            HttpError::TooLarge(why) => (ErrorKind::TooLarge, why, "the answer exceeds the host's size limit"),
        };
        ActionError::new(kind, format!("{idp}: {doing} failed: {what} ({advice})"))
    }

    /// Parses a success answer's JSON body; a body that is not JSON is a `protocol` error.
    pub fn json_body(&self, response: &Response, doing: Doing) -> Result<Value, ActionError> {
        let idp = self.idp();
        if let Some(content_type) = response.header("content-type") {
            if !is_json_content_type(content_type) {
                return Err(ActionError::new(
                    ErrorKind::Protocol,
                    format!(
                        "{idp}: answered {} with Content-Type '{}' instead of SCIM JSON while {doing}: {}",
                        response.status,
                        quote(content_type),
                        quote(&String::from_utf8_lossy(&response.body))
                    ),
                )
                .with_status(response.status));
            }
        }
        serde_json::from_slice(&response.body).map_err(|error| {
            ActionError::new(
                ErrorKind::Protocol,
                format!(
                    "{idp}: answered {} with a body that is not valid JSON ({error}) while {doing}: {}",
                    response.status,
                    quote(&String::from_utf8_lossy(&response.body))
                ),
            )
            .with_status(response.status)
        })
    }

    /// A `protocol` error about an answer that parsed but does not make sense.
    pub fn protocol_error(&self, doing: Doing, what: &str) -> ActionError {
        ActionError::new(ErrorKind::Protocol, format!("{}: {what} while {doing}", self.idp()))
    }
}

/// Whether an answer means "not in this form": 400 (a filter, syntax or path the server does not
/// take), 405 or 501 (RFC 7644 §3.12: an operation the server does not implement). Every fallback
/// to another form of a request keys on this; 401/403, 404, 409, 413, 429 and the other 5xx keep
/// their own meaning.
pub fn says_unsupported(status: u16) -> bool {
    matches!(status, 400 | 405 | 501)
}

/// Errors that every later request to the same provider would share (bad token, TLS, deadline,
/// unreachable): nothing more is sent once one occurs.
pub fn is_fatal(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::AuthFailed
            | ErrorKind::Denied
            | ErrorKind::Tls
            | ErrorKind::Timeout
            | ErrorKind::Transport
            | ErrorKind::RateLimited
            | ErrorKind::Redirect
    )
}

/// A lost answer or a gateway's 502/504 may follow a change the server applied; 429 and 503
/// are refusals before any work.
fn may_have_been_applied(outcome: &Result<Response, HttpError>) -> bool {
    match outcome {
        Ok(response) => matches!(response.status, 502 | 504),
        Err(error) => matches!(error, HttpError::ConnectionFailed(_)),
    }
}

/// The content encoding of an answer, when it has one (the host asks for none and passes no such
/// body on).
fn encoded(response: &Response) -> Option<&str> {
    response.header("content-encoding").map(str::trim).filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
}

fn is_auth_failure(status: u16) -> bool {
    status == 401 || status == 403
}

/// Exponential backoff with jitter, so that playbooks throttled together do not retry together.
fn backoff_ms(attempt: u32, salt: &str) -> u64 {
    let ceiling = BACKOFF_BASE_MS.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX_MS);
    ceiling / 2 + jitter(salt, attempt) % (ceiling / 2 + 1)
}

fn jitter(salt: &str, attempt: u32) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((salt, attempt))
}

fn describe_attempt(outcome: &Result<Response, HttpError>) -> String {
    match outcome {
        Ok(response) => format!("HTTP {}", response.status),
        Err(HttpError::ConnectionFailed(why)) => format!("connection failed: {why}"),
        Err(
            HttpError::Denied(why) | HttpError::Timeout(why) | HttpError::TlsFailed(why) | HttpError::TooLarge(why),
        ) => why.clone(),
    }
}
