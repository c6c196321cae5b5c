//! A SCIM server scripted below the HTTP trait, for unit tests: each request gets the next
//! answer, and every request is kept.

use serde_json::Value;
use soar_types::host::{Host, HttpError, LogLevel, Request, Response};
use soar_types::model::{Profile, Provider};

pub struct Scripted {
    answers: Vec<Result<(u16, Value), HttpError>>,
    pub seen: Vec<Request>,
}

impl Scripted {
    /// Answers with these statuses and bodies in order (`Value::Null`: no body).
    pub fn new(answers: Vec<(u16, Value)>) -> Self {
        Self::answering(answers.into_iter().map(Ok).collect())
    }

    /// Answers, or fails as the host would, in order.
    pub fn answering(answers: Vec<Result<(u16, Value), HttpError>>) -> Self {
        Scripted { answers, seen: Vec::new() }
    }

    /// Answers 200 with each of these bodies in order.
    pub fn ok(bodies: Vec<Value>) -> Self {
        Self::new(bodies.into_iter().map(|body| (200, body)).collect())
    }

    /// The requests seen, as `Method url` lines.
    pub fn lines(&self) -> Vec<String> {
        self.seen.iter().map(|request| format!("{:?} {}", request.method, request.url)).collect()
    }
}

impl Host for Scripted {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        self.seen.push(request);
        let (status, body) = self.answers.remove(0)?;
        let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        Ok(Response { status, headers: Vec::new(), body })
    }

    fn sleep(&mut self, _ms: u64) -> bool {
        true
    }

    fn log(&mut self, _level: LogLevel, _message: &str) {}
}

/// A generic provider at `https://scim.example/v2` whose restricted group is named "G", with
/// no retries.
pub fn provider() -> Provider {
    Provider {
        name: "p".into(),
        base_url: "https://scim.example/v2".into(),
        restricted_group: Some("G".into()),
        restricted_group_id: None,
        profile: Profile::Generic,
        max_retries: 0,
    }
}
