//! Compiled components cached on disk, so a second run compiles nothing. A cache entry is keyed
//! by the component's SHA-256 and wasmtime's precompile compatibility hash, and is checked
//! against its recorded digest before it is deserialised; a corrupt entry is rebuilt. The cache
//! is as trusted as the account that owns it: the folder is created owner-only.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmtime::component::Component;
use wasmtime::Engine;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into SHA-256, for a key that is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key of a component for this engine.
pub fn cache_key(engine: &Engine, component_sha256: &str) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    component_sha256.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize())
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

/// The component, from the cache when a valid entry exists, else compiled (and cached when a
/// folder is given). A cache that cannot be written only costs the next run a compile.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    component_sha256: &str,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    let key = cache_key(engine, component_sha256);
    let artefact = dir.join(format!("{key}.cwasm"));
    let digest_file = dir.join(format!("{key}.sha256"));
    if let (Ok(compiled), Ok(recorded)) = (std::fs::read(&artefact), std::fs::read_to_string(&digest_file)) {
        if sha256_hex(&compiled) == recorded.trim() {
            // SAFETY: the bytes were written by `Engine::precompile_component` of an engine with
            // the same compatibility hash (the key), into an owner-only folder, and match the
            // digest recorded beside them.
            if let Ok(component) = unsafe { Component::deserialize(engine, &compiled) } {
                return Ok(component);
            }
        }
        let _ = std::fs::remove_file(&artefact);
        let _ = std::fs::remove_file(&digest_file);
    }
    let compiled = engine.precompile_component(bytes)?;
    let _ = store(dir, &artefact, &digest_file, &compiled);
    // SAFETY: produced just now by this engine.
    unsafe { Component::deserialize(engine, &compiled) }
}

fn store(dir: &Path, artefact: &Path, digest_file: &Path, compiled: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    static WRITES: AtomicUsize = AtomicUsize::new(0);
    let unique = format!("{}.{}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed));
    let temporary = artefact.with_extension(format!("tmp.{unique}"));
    std::fs::write(&temporary, compiled)?;
    std::fs::rename(&temporary, artefact)?;
    let temporary = digest_file.with_extension(format!("tmp.{unique}"));
    std::fs::write(&temporary, sha256_hex(compiled))?;
    std::fs::rename(&temporary, digest_file)
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
