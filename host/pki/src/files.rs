//! Writing private files: the data directory is the node's own, so every
//! key, certificate and token in it is readable by its owner alone.

use std::path::Path;

use crate::error::{PkiError, Result};

/// Reads a file that may not exist yet.
///
/// # Errors
/// The file exists but cannot be read.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io { path: path.to_owned(), source }),
    }
}

/// Writes `text` to `path` with mode 0600 through a temporary file and a
/// rename, so a crash never leaves a half-written key or certificate. The
/// parent directory is made (0700) if missing.
///
/// # Errors
/// The file or its directory cannot be written.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let failed = |source| PkiError::Io { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}
