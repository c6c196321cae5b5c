//! The audit trail: one JSON line per attempted change and per dry-run decision, appended and
//! flushed to disk before the action returns. The file is opened before anything is sent, so a
//! log that cannot be written stops the action before any change.

use crate::files::{self, FileError};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why the audit trail cannot be kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("cannot open audit_log {} for appending: it {source}; fix the path or its permissions", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("cannot write audit_log {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct AuditLog {
    path: PathBuf,
    file: File,
}

/// What an action was, for its audit lines.
pub struct AuditContext<'a> {
    pub action: &'a str,
    pub correlation_id: Option<&'a str>,
    pub dry_run: bool,
    /// add-to-group: why, and until when (RFC 3339), as the ledger records it.
    pub reason: Option<&'a str>,
    pub expires_at: Option<String>,
}

impl AuditLog {
    /// Opens (creating it owner-only) a regular file, never through a symbolic link; a FIFO, a
    /// device or a folder is refused without blocking.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let file = files::open_append(path).map_err(|source| AuditError::Open { path: path.to_path_buf(), source })?;
        Ok(AuditLog { path: path.to_path_buf(), file })
    }

    /// Whether other users than the owner may read or write the trail.
    pub fn shared_with_others(&self) -> bool {
        self.file.metadata().is_ok_and(|metadata| files::shared_with_others(&metadata))
    }

    /// Appends one line per user of each provider of `document` (a result document), then
    /// flushes them to disk.
    pub fn record(&mut self, context: &AuditContext, document: &Value) -> Result<(), AuditError> {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut text = String::new();
        for provider in document["providers"].as_array().into_iter().flatten() {
            let provider_error = provider["error"].as_object().map(|_| &provider["error"]);
            for user in provider["users"].as_array().into_iter().flatten() {
                let error = user["error"].as_object().map(|_| &user["error"]).or(provider_error);
                let line = json!({
                    "time": time,
                    "correlation_id": context.correlation_id,
                    "action": context.action,
                    "dry_run": context.dry_run,
                    "provider": provider["idp"],
                    "user": user["user"],
                    "user_id": user["user_id"],
                    "group_id": provider["group"]["id"],
                    "outcome": user["outcome"],
                    "error": error.map(|e| e["kind"].clone()),
                    "http_status": error.and_then(|e| e.get("status").cloned()),
                });
                let mut line = line;
                if let Some(reason) = context.reason {
                    line["reason"] = json!(reason);
                }
                if let Some(expires_at) = &context.expires_at {
                    line["expires_at"] = json!(expires_at);
                }
                text.push_str(&line.to_string());
                text.push('\n');
            }
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| AuditError::Write { path: self.path.clone(), source })
    }
}
