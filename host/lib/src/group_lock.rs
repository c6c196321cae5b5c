//! Changes to one group run one at a time across `soar-host` processes, not only across the
//! threads of one: platforms that start a process per playbook action would otherwise let one
//! process's membership check interleave with another's PATCH, and a server that stores
//! duplicate members would get them. Each change takes an exclusive lock on a file named after
//! the provider's base URL and group, in a folder under the cache folder.

use crate::cache::{create_private_dir, sha256_hex};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often a held lock is tried again.
const POLL: Duration = Duration::from_millis(10);

/// The lock folder, if one could be made.
pub struct GroupLocks {
    dir: Option<PathBuf>,
}

/// Locks held until dropped (closing a file releases its lock, even when a process dies).
pub struct HeldLocks {
    _files: Vec<File>,
}

impl HeldLocks {
    /// Holding nothing: reads, dry runs, or no usable lock folder.
    pub fn none() -> Self {
        HeldLocks { _files: Vec::new() }
    }
}

impl GroupLocks {
    /// Locks under `dir`; `None` turns cross-process locking off.
    pub fn new(dir: Option<PathBuf>) -> Self {
        GroupLocks { dir }
    }

    /// The lock file's name for a tenant (see `action::tenant_key`): the first 32 hex digits
    /// of the SHA-256 of the key.
    pub fn key(tenant: &str) -> String {
        sha256_hex(tenant.as_bytes())[..32].to_string()
    }

    /// Takes the locks of `keys` in sorted order (so two actions never wait on each other in a
    /// cycle), waiting until `deadline` at most. A lock folder that cannot be made or written
    /// costs only the cross-process exclusion, which the warning says.
    pub fn acquire(&self, mut keys: Vec<String>, deadline: Instant) -> Result<HeldLocks, LockFailure> {
        let Some(dir) = &self.dir else {
            return Ok(HeldLocks::none());
        };
        keys.sort();
        keys.dedup();
        let unavailable = |error: std::io::Error| LockFailure::Unavailable(format!("{}: {error}", dir.display()));
        create_private_dir(dir).map_err(unavailable)?;
        let mut files = Vec::with_capacity(keys.len());
        for key in keys {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(format!("{key}.lock")))
                .map_err(unavailable)?;
            wait_for(&file, deadline)?;
            files.push(file);
        }
        Ok(HeldLocks { _files: files })
    }
}

/// Why the locks were not taken.
#[derive(Debug)]
#[non_exhaustive]
pub enum LockFailure {
    /// The folder or a lock file cannot be used: changes go on without cross-process exclusion.
    Unavailable(String),
    /// Another process held the lock until the deadline.
    TimedOut,
}

fn wait_for(file: &File, deadline: Instant) -> Result<(), LockFailure> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(error)) => return Err(LockFailure::Unavailable(error.to_string())),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(LockFailure::TimedOut);
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("soar-group-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_held_lock_makes_the_next_taker_wait_until_released() {
        let locks = GroupLocks::new(Some(scratch("wait")));
        let key = GroupLocks::key("https://scim.example/v2");
        let held = locks.acquire(vec![key.clone()], Instant::now()).expect("first lock");
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(matches!(locks.acquire(vec![key.clone()], soon), Err(LockFailure::TimedOut)));
        drop(held);
        locks.acquire(vec![key], Instant::now()).expect("free again once released");
    }

    #[test]
    fn different_groups_do_not_exclude_each_other() {
        let locks = GroupLocks::new(Some(scratch("apart")));
        let _a = locks.acquire(vec![GroupLocks::key("https://a.example/v2")], Instant::now()).unwrap();
        locks.acquire(vec![GroupLocks::key("https://b.example/v2")], Instant::now()).expect("another group");
    }

    #[test]
    fn an_unusable_folder_is_reported_not_fatal() {
        let file = scratch("not-a-folder");
        std::fs::write(&file, b"").unwrap();
        let locks = GroupLocks::new(Some(file.join("locks")));
        let key = GroupLocks::key("https://scim.example/v2");
        assert!(matches!(locks.acquire(vec![key], Instant::now()), Err(LockFailure::Unavailable(_))));
    }
}
