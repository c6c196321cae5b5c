//! Reading the files a config names, and opening the audit log, without ever blocking or being
//! led somewhere else: each must be a regular file (a symbolic link to one is fine where secrets
//! are mounted that way), read with a size cap; a FIFO, a device or a folder is refused before a
//! byte is read.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::path::Path;

/// The largest plugin component read (the component is about 300 KB).
pub const MAX_PLUGIN_BYTES: u64 = 64 * 1024 * 1024;
/// The largest simulator seed read.
pub const MAX_SEED_BYTES: u64 = 256 * 1024 * 1024;

/// Why a file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {0} bytes")]
    TooLarge(u64),
    #[error("is a symbolic link; name the file itself")]
    Link,
    #[error("is not UTF-8 text")]
    NotText,
}

/// What a path that is not a regular file is.
fn kind_of(metadata: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let file_type = metadata.file_type();
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if metadata.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Opens without blocking (a FIFO would wait for a writer) and checks what was opened.
fn open_checked(options: &mut OpenOptions, path: &Path) -> Result<File, FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(FileError::NotRegular(kind_of(&metadata)));
    }
    Ok(file)
}

/// The contents of a regular file (or what a symbolic link names), at most `max_bytes`, and
/// what the file is.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<(Vec<u8>, Metadata), FileError> {
    let file = open_checked(OpenOptions::new().read(true), path)?;
    let metadata = file.metadata()?;
    Ok((read_capped(file, max_bytes)?, metadata))
}

/// A text file's contents ([`read_regular`]), UTF-8 with a leading byte-order mark dropped (editors
/// on some systems write one), and what the file is.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<(String, Metadata), FileError> {
    let (bytes, metadata) = read_regular(path, max_bytes)?;
    Ok((text_of(bytes)?, metadata))
}

/// Bytes as UTF-8 text without a leading byte-order mark.
pub fn text_of(bytes: Vec<u8>) -> Result<String, FileError> {
    let text = String::from_utf8(bytes).map_err(|_| FileError::NotText)?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

/// Everything a reader gives, up to `max_bytes` (standard input, say).
pub fn read_capped(reader: impl Read, max_bytes: u64) -> Result<Vec<u8>, FileError> {
    let mut bytes = Vec::new();
    reader.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(FileError::TooLarge(max_bytes));
    }
    Ok(bytes)
}

/// Opens a file to append to, created owner-only, never through a symbolic link (a dangling one
/// would otherwise create its target).
pub fn open_append(path: &Path) -> Result<File, FileError> {
    open_writable(path, true)
}

/// Opens a file to write over later (a trace, once the action is done), with the rules of
/// [`open_append`]; what it holds stays until then.
pub fn open_to_replace(path: &Path) -> Result<File, FileError> {
    open_writable(path, false)
}

fn open_writable(path: &Path, append: bool) -> Result<File, FileError> {
    // What is there already is named before opening (a FIFO opened for writing has no reader).
    if let Ok(existing) = std::fs::symlink_metadata(path) {
        if existing.file_type().is_symlink() {
            return Err(FileError::Link);
        }
        if !existing.is_file() {
            return Err(FileError::NotRegular(kind_of(&existing)));
        }
    }
    let mut options = OpenOptions::new();
    options.create(true);
    match append {
        true => options.append(true),
        false => options.write(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    open_checked(&mut options, path).map_err(|error| match error {
        FileError::Io(io) if io.raw_os_error() == Some(libc::ELOOP) => FileError::Link,
        other => other,
    })
}

/// Whether others than the owner may read or write a file (`mode & 0o077`).
pub fn shared_with_others(metadata: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode() & 0o077 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        false
    }
}

/// Whether a path is a folder or file this process may trust with compiled code: owned by this
/// user and not writable by group or others (its parents are not checked: `/tmp` is
/// world-writable by design).
pub fn trusted(metadata: &Metadata) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if metadata.uid() != me {
            return Err(format!("it belongs to user {}, not to this user ({me})", metadata.uid()));
        }
        if metadata.mode() & 0o022 != 0 {
            return Err(format!("group or others may write it (mode {:o})", metadata.mode() & 0o777));
        }
    }
    let _ = metadata;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("soar-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_regular_files_are_read_and_never_past_the_cap() {
        let dir = scratch("read");
        let file = dir.join("f");
        std::fs::write(&file, "12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap().0, b"12345");
        assert!(matches!(read_regular(&file, 4), Err(FileError::TooLarge(4))));
        assert!(matches!(read_regular(&dir, 4), Err(FileError::NotRegular("a folder"))));
        assert!(matches!(read_regular(Path::new("/dev/zero"), 4), Err(FileError::NotRegular("a device"))));
        #[cfg(unix)]
        {
            let link = dir.join("link");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert_eq!(read_regular(&link, 5).unwrap().0, b"12345", "a link to a regular file is read");
            let fifo = dir.join("fifo");
            let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
            assert!(matches!(read_regular(&fifo, 4), Err(FileError::NotRegular("a FIFO"))), "refused without blocking");
            assert!(matches!(open_append(&fifo), Err(FileError::NotRegular("a FIFO"))));
            let dangling = dir.join("dangling");
            std::os::unix::fs::symlink(dir.join("target-of-link"), &dangling).unwrap();
            assert!(matches!(open_append(&dangling), Err(FileError::Link)));
            assert!(!dir.join("target-of-link").exists(), "the link's target is not created");
        }
    }
}
