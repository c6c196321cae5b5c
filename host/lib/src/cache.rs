//! Compiled components cached on disk, so a second run compiles nothing; precompiled code is
//! read only from a cache the host can trust (as Spin does it):
//!
//! - the folder and every file in it must belong to this user and not be writable by group or
//!   others (its parents are not checked: `/tmp` is world-writable by design); otherwise nothing
//!   compiled is read from it or written to it, and the plugin is compiled in memory;
//! - an entry (`KEY.cwasm`, and `KEY.tag` beside it) is bound by a keyed BLAKE3 MAC, under a key
//!   kept in the folder (`hmac.key`, owner-only), to the plugin's SHA-256, the engine's
//!   compatibility hash and every byte of the artefact: no entry can stand in for another
//!   plugin's, and a corrupt one is rebuilt, never loaded. (BLAKE3 reads the megabyte artefact
//!   in a quarter of the time SHA-256 takes, and loading from the cache is on every action's path.)

use crate::files;
use sha2::{Digest, Sha256};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::component::Component;
use wasmtime::Engine;

const KEY_FILE: &str = "hmac.key";

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The engine settings an artefact depends on (wasmtime's compatibility hash).
fn engine_fingerprint(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn finish(&self) -> u64 {
            unreachable!("only the digest is read")
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize())
}

/// The cache key of a component for this engine.
pub fn cache_key(engine: &Engine, component_sha256: &str) -> String {
    sha256_hex(format!("{component_sha256}\n{}", engine_fingerprint(engine)).as_bytes())
}

/// The configured cache folder, else `$XDG_CACHE_HOME/soar-host`, else `~/.cache/soar-host`.
pub fn cache_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return Some(dir.to_path_buf());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("soar-host"))
}

/// A cache folder this process trusts with compiled code, and the key its entries are signed with.
struct TrustedCache {
    dir: PathBuf,
    key: [u8; 32],
}

/// Why a cache folder is not used for compiled code.
fn untrusted(dir: &Path, why: impl std::fmt::Display) -> String {
    format!(
        "the cache folder {} is not used for compiled code ({why}); the plugin is compiled in memory: \
         make the folder owner-only (chmod 700) or set cache_dir",
        dir.display()
    )
}

impl TrustedCache {
    /// Opens (creating, owner-only) a folder and its key, or says why it cannot be trusted.
    fn open(dir: &Path) -> Result<TrustedCache, String> {
        create_private_dir(dir).map_err(|e| untrusted(dir, e))?;
        let metadata = std::fs::metadata(dir).map_err(|e| untrusted(dir, e))?;
        files::trusted(&metadata).map_err(|why| untrusted(dir, why))?;
        let key_path = dir.join(KEY_FILE);
        let secret = match read_trusted(&key_path, 64) {
            Ok(bytes) if bytes.len() == 32 && owner_only(&key_path) => bytes,
            Ok(_) => return Err(untrusted(dir, format!("{KEY_FILE} is not a 32-byte owner-only key"))),
            Err(_) => create_key(&key_path).map_err(|e| untrusted(dir, format!("cannot write {KEY_FILE}: {e}")))?,
        };
        let key = secret.try_into().map_err(|_| untrusted(dir, format!("{KEY_FILE} is not a 32-byte key")))?;
        Ok(TrustedCache { dir: dir.to_path_buf(), key })
    }

    fn tag(&self, component_sha256: &str, fingerprint: &str, artefact: &[u8]) -> String {
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(format!("soar-host cache v3\n{component_sha256}\n{fingerprint}\n").as_bytes());
        mac.update(artefact);
        mac.finalize().to_hex().to_string()
    }
}

/// A file's contents, when it is a regular file (not a link) that this user owns and others
/// cannot write.
fn read_trusted(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let metadata = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    files::trusted(&metadata)?;
    files::read_regular(path, max_bytes).map(|(bytes, _)| bytes).map_err(|e| e.to_string())
}

fn owner_only(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|metadata| !files::shared_with_others(&metadata))
}

/// A new random key, written owner-only; a key another process wrote first is used instead.
fn create_key(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(&secret)?;
            file.sync_all()?;
            Ok(secret.to_vec())
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            read_trusted(path, 64).map_err(std::io::Error::other)
        }
        Err(error) => Err(error),
    }
}

/// The component, from the cache when a trusted, valid entry exists, else compiled (and cached
/// when the folder is trusted). `warn` hears why a folder is not used; a cache that cannot be
/// written only costs the next run a compile.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    component_sha256: &str,
    cache_dir: Option<&Path>,
    warn: &dyn Fn(String),
) -> wasmtime::Result<Component> {
    let cache = match cache_dir.map(TrustedCache::open) {
        None => return Component::new(engine, bytes),
        Some(Err(why)) => {
            warn(why);
            return Component::new(engine, bytes);
        }
        Some(Ok(cache)) => cache,
    };
    let fingerprint = engine_fingerprint(engine);
    let key = cache_key(engine, component_sha256);
    let artefact_path = cache.dir.join(format!("{key}.cwasm"));
    let tag_path = cache.dir.join(format!("{key}.tag"));
    if let (Ok(artefact), Ok(tag)) = (read_trusted(&artefact_path, 1 << 30), read_trusted(&tag_path, 1024)) {
        let expected = cache.tag(component_sha256, &fingerprint, &artefact);
        if String::from_utf8_lossy(&tag).trim() == expected {
            // SAFETY: the bytes carry this cache's HMAC over the plugin's SHA-256, this engine's
            // compatibility hash and their own digest: `Engine::precompile_component` of this
            // plugin on an engine like this one wrote them, into a folder only this user writes.
            if let Ok(component) = unsafe { Component::deserialize(engine, &artefact) } {
                return Ok(component);
            }
        }
        let _ = std::fs::remove_file(&artefact_path);
        let _ = std::fs::remove_file(&tag_path);
    }
    let compiled = engine.precompile_component(bytes)?;
    let tag = cache.tag(component_sha256, &fingerprint, &compiled);
    let _ = store(&artefact_path, &tag_path, &compiled, &tag);
    // SAFETY: produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

/// Writes the artefact and its tag, each through a temporary file renamed into place.
fn store(artefact: &Path, tag_path: &Path, compiled: &[u8], tag: &str) -> std::io::Result<()> {
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let unique = format!("{}.{}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed));
    for (path, contents) in [(artefact, compiled), (tag_path, tag.as_bytes())] {
        let temporary = path.with_extension(format!("tmp.{unique}"));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&temporary)?.write_all(contents)?;
        std::fs::rename(&temporary, path)?;
    }
    Ok(())
}

pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
