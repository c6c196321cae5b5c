//! One rate limit per origin for every host process on a machine: requests to an origin are
//! spaced evenly, `1 / requests_per_second` apart (no burst), whichever process sends them.
//!
//! The shared state is one small file per origin, so that any host (Rust, Python, a platform's
//! own) can take part:
//!
//! - path: `<cache_dir>/rate/<first 32 hex digits of SHA-256(origin)>`, where `origin` is
//!   `scheme://host:port` with the port always written (`https://scim.zscaler.net:443`);
//! - contents: the earliest time the next request may be sent, as ASCII decimal nanoseconds since
//!   the Unix epoch (an empty or unreadable file means "now");
//! - protocol: open (create owner-only), take an exclusive advisory lock (`flock`), read the
//!   time; the request's slot is the later of that time and now; if waiting for the slot would
//!   pass the caller's deadline, unlock and give up without writing; else write slot + interval,
//!   unlock, and send at the slot.
//!
//! Without a usable folder the same spacing is kept inside this process only.

use crate::cache::{create_private_dir, sha256_hex};
use crate::ledger::Ledger;
pub use soar_host_policy::rate::TooLate;
use soar_host_policy::rate::{self, Reservation};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where requests to an origin may next be sent.
pub struct RateLimiter {
    dir: Option<PathBuf>,
    /// A stored slot further ahead than this is not trusted (see [`soar_host_policy::rate`]).
    horizon: Duration,
    /// Whether the unusable folder was reported already.
    warned: AtomicBool,
    /// The next free slot per origin when the folder cannot be used, in nanoseconds since the epoch.
    in_process: Mutex<HashMap<String, u128>>,
    /// A ledger shared between machines (PostgreSQL) that holds the slots instead of the folder.
    shared: RwLock<Option<Arc<Ledger>>>,
    /// Whether a failing shared ledger was reported already.
    shared_failed: AtomicBool,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or(0)
}

/// The file that holds an origin's next free slot.
pub fn slot_file(dir: &Path, origin: &str) -> PathBuf {
    dir.join(&sha256_hex(origin.as_bytes())[..32])
}

impl RateLimiter {
    /// Shares the spacing through files under `dir` (see the module's text); a stored slot more
    /// than `horizon` ahead is replaced by now.
    pub fn new(dir: Option<PathBuf>, horizon: Duration) -> Self {
        RateLimiter {
            dir,
            horizon,
            warned: AtomicBool::new(false),
            in_process: Mutex::new(HashMap::new()),
            shared: RwLock::new(None),
            shared_failed: AtomicBool::new(false),
        }
    }

    /// Keeps the slots in this shared ledger (PostgreSQL) from now on, so that every machine
    /// using it spaces its requests to an origin together.
    pub fn share_through(&self, ledger: Arc<Ledger>) {
        *self.shared.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(ledger);
    }

    /// Reserves the next slot for `origin` at `rate` requests per second and returns the wait
    /// until it; fails at once, reserving nothing, when the wait would exceed `budget`. `warn`
    /// hears once why the folder cannot be used, and of a slot that was not trusted.
    pub fn reserve(
        &self,
        origin: &str,
        rate: f64,
        budget: Duration,
        warn: &dyn Fn(String),
    ) -> Result<Duration, TooLate> {
        let interval = rate::interval_nanos(rate);
        let shared = self.shared.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let from_ledger = shared.and_then(|ledger| match ledger.reserve_slot(origin, interval, budget, self.horizon) {
            Ok(reserved) => Some(reserved),
            Err(why) => {
                if !self.shared_failed.swap(true, Ordering::Relaxed) {
                    warn(format!("{why}; requests to {origin} are spaced by this machine's rate limit only"));
                }
                None
            }
        });
        let reserved = match (from_ledger, &self.dir) {
            (Some(reserved), _) => reserved,
            (None, dir) => match dir {
                Some(dir) => match reserve_in_file(dir, origin, interval, budget, self.horizon) {
                    Ok(reserved) => reserved,
                    Err(error) => {
                        if !self.warned.swap(true, Ordering::Relaxed) {
                            warn(format!(
                                "the rate-limit folder {} cannot be used ({error}); requests to {origin} are spaced \
                             within this process only: set cache_dir to a writable folder",
                                dir.display()
                            ));
                        }
                        self.reserve_in_process(origin, interval, budget)
                    }
                },
                None => self.reserve_in_process(origin, interval, budget),
            },
        }?;
        if let Some(ahead) = reserved.distrusted {
            warn(format!(
                "the rate-limit slot for {origin} stood {} s ahead, beyond retry_after_cap_ms: a clock set back or a \
                 stale file; spacing starts again from now",
                ahead.as_secs()
            ));
        }
        Ok(reserved.wait)
    }

    fn reserve_in_process(&self, origin: &str, interval: u128, budget: Duration) -> Result<Reservation, TooLate> {
        let mut slots = self.in_process.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = slots.entry(origin.to_string()).or_insert(0);
        let reserved = rate::reserve(*next, now_nanos(), interval, budget, self.horizon)?;
        *next = reserved.following;
        Ok(reserved)
    }
}

fn reserve_in_file(
    dir: &Path,
    origin: &str,
    interval: u128,
    budget: Duration,
    horizon: Duration,
) -> std::io::Result<Result<Reservation, TooLate>> {
    create_private_dir(dir)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut file: File = options.open(slot_file(dir, origin))?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("the slot file is not a regular file"));
    }
    file.lock()?;
    let mut text = String::new();
    // A slot is a few dozen digits: anything longer is not one.
    let next = match (&mut file).take(64).read_to_string(&mut text) {
        Ok(_) => text.trim().parse::<u128>().unwrap_or(0),
        Err(_) => 0,
    };
    let reserved = rate::reserve(next, now_nanos(), interval, budget, horizon);
    if let Ok(reservation) = &reserved {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(reservation.following.to_string().as_bytes())?;
    }
    file.unlock()?;
    Ok(reserved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn two_limiters_on_one_folder_share_the_spacing() {
        let dir = std::env::temp_dir().join(format!("soar-rate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let horizon = Duration::from_secs(60);
        let (a, b) = (RateLimiter::new(Some(dir.clone()), horizon), RateLimiter::new(Some(dir.clone()), horizon));
        let started = Instant::now();
        for _ in 0..3 {
            for limiter in [&a, &b] {
                let wait =
                    limiter.reserve("https://zia.example:443", 20.0, Duration::from_secs(5), &|why| panic!("{why}"));
                std::thread::sleep(wait.unwrap());
            }
        }
        // Six requests at 20 per second: the last one no earlier than 250 ms after the first.
        assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
        let slot: u128 = std::fs::read_to_string(slot_file(&dir, "https://zia.example:443")).unwrap().parse().unwrap();
        assert!(slot > now_nanos(), "the next slot is in the future");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
