//! One updating progress line on stderr while an action runs, for people at a terminal:
//! requests sent and answered, what the plugin is doing, any wait (rate limit, Retry-After or
//! backoff) and the time left before the deadline. Drawn only when stderr is a terminal and the
//! action has run for a second; playbooks and logs never see it.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use soar_host::services::{Exchange, Observer, Wait};
use soar_host::text::printable;
use soar_types::host::Request;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an action runs before its progress line appears.
const SHOWN_AFTER: Duration = Duration::from_secs(1);
const REFRESH: Duration = Duration::from_millis(200);

pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    deadline: Duration,
    state: Mutex<State>,
    done: AtomicBool,
}

#[derive(Default)]
struct State {
    sent: u32,
    answered: u32,
    doing: String,
    waiting: Option<(Wait, Instant)>,
}

impl Progress {
    /// The progress line of an action with this deadline, when stderr is a terminal.
    pub fn on_terminal(deadline: Duration) -> Option<Arc<Progress>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        let progress = Arc::new(Progress {
            bar,
            started: Instant::now(),
            deadline,
            state: Mutex::new(State::default()),
            done: AtomicBool::new(false),
        });
        let drawing = progress.clone();
        std::thread::spawn(move || drawing.draw_until_done());
        Some(progress)
    }

    fn draw_until_done(&self) {
        while !self.done.load(Ordering::Acquire) {
            if self.started.elapsed() >= SHOWN_AFTER {
                if self.bar.is_hidden() {
                    self.bar.set_draw_target(ProgressDrawTarget::stderr());
                }
                self.bar.set_message(self.line());
                self.bar.tick();
            }
            std::thread::sleep(REFRESH);
        }
    }

    fn line(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut parts = vec![format!("{} requests, {} answered", state.sent, state.answered)];
        if !state.doing.is_empty() {
            parts.push(printable(&state.doing).into_owned());
        }
        if let Some((why, until)) = state.waiting {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                parts.push(format!("waiting {:.1} s {}", left.as_secs_f64(), why.purpose()));
            }
        }
        let left = self.deadline.saturating_sub(self.started.elapsed());
        parts.push(format!("{} s left", left.as_secs()));
        parts.join(" · ")
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    /// Runs `print` with the line cleared, so that log lines do not mix with it.
    pub fn suspend(&self, print: impl FnOnce()) {
        self.bar.suspend(print);
    }

    /// Clears the line for good.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.bar.finish_and_clear();
    }
}

impl Observer for Progress {
    fn sending(&self, request: &Request) {
        self.update(|state| {
            state.sent += 1;
            state.doing = request.purpose.doing.clone();
        });
    }

    fn exchanged(&self, _exchange: &Exchange) {
        self.update(|state| state.answered += 1);
    }

    fn waiting(&self, why: Wait, how_long: Duration) {
        self.update(|state| state.waiting = Some((why, Instant::now() + how_long)));
    }
}
