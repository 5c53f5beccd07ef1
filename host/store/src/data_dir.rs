//! The data directory is the node's private state: keys, tokens,
//! kubeconfig, certificates, the database and the raft snapshot. Only the
//! user the node runs as may read it.

use std::fs::{DirBuilder, Permissions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::Mode;

/// Mode of every directory in the data directory: the owner's alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Mode of every file in the data directory: the owner may read and write.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Permission bits this process never grants when it creates a file or a
/// directory: none for the group, none for others.
const PRIVATE_UMASK: u32 = 0o077;

/// Most entries a data directory may hold: bounds the walk that secures
/// it. A node's directory holds a few hundred.
pub const DATA_DIR_ENTRIES_MAX: usize = 1_000_000;

/// Why the data directory could not be made private.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory or an entry in it could not be created, listed or
    /// changed.
    #[error("making the data directory private: {path}: {source}")]
    Unsecured {
        /// The file or directory.
        path: PathBuf,
        /// What the system answered.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds more entries than [`DATA_DIR_ENTRIES_MAX`].
    #[error("the data directory {path} holds more than {DATA_DIR_ENTRIES_MAX} entries")]
    TooManyEntries {
        /// The data directory.
        path: PathBuf,
    },
}

/// Makes `dir` private: creates it if missing, then gives it and every
/// directory inside it mode 0700 and every other entry mode 0600, whatever
/// modes they had. Symbolic links are left alone and never followed.
/// Also makes every file and directory this process creates afterwards
/// private (umask 077), so nothing created later needs fixing up.
///
/// Call it when a node starts, before anything in `dir` is opened.
///
/// # Errors
/// [`DataDirError`] when an entry cannot be listed or changed (for
/// example, it belongs to another user), or the directory is too large.
pub fn secure_data_dir(dir: &Path) -> Result<(), DataDirError> {
    create_private_dir(dir)?;
    let mut pending = vec![dir.to_owned()];
    let mut seen = 0usize;
    while let Some(current) = pending.pop() {
        set_mode(&current, PRIVATE_DIR_MODE)?;
        let unsecured = |source| DataDirError::Unsecured { path: current.clone(), source };
        for entry in std::fs::read_dir(&current).map_err(unsecured)? {
            seen += 1;
            if seen > DATA_DIR_ENTRIES_MAX {
                return Err(DataDirError::TooManyEntries { path: dir.to_owned() });
            }
            let entry = entry.map_err(unsecured)?;
            let kind = entry.file_type().map_err(unsecured)?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if !kind.is_symlink() {
                set_mode(&entry.path(), PRIVATE_FILE_MODE)?;
            }
        }
    }
    Ok(())
}

/// Creates `dir` (and missing parents) private, and makes every file this
/// process creates from now on private.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), DataDirError> {
    rustix::process::umask(Mode::from_raw_mode(PRIVATE_UMASK));
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(|source| DataDirError::Unsecured { path: dir.to_owned(), source })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DataDirError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|source| DataDirError::Unsecured { path: path.to_owned(), source })
}

/// Held by the tests that set or depend on the process umask, which all
/// threads of a test process share.
#[cfg(test)]
pub(crate) static UMASK_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn write(path: &Path, file_mode: u32) {
        std::fs::write(path, b"secret").expect("write");
        std::fs::set_permissions(path, Permissions::from_mode(file_mode)).expect("chmod");
    }

    #[test]
    fn an_open_data_directory_becomes_private_and_links_are_left_alone() {
        let root = tempfile::tempdir().expect("temporary directory");
        let dir = root.path().join("data");
        let pki = dir.join("pki");
        let deep = dir.join("db").join("tables").join("0");
        for path in [&dir, &pki, &deep] {
            std::fs::create_dir_all(path).expect("mkdir");
            std::fs::set_permissions(path, Permissions::from_mode(0o755)).expect("chmod");
        }
        let outside = root.path().join("shared.txt");
        write(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
        let files = [dir.join("kubeconfig"), pki.join("ca.key"), deep.join("1"), dir.join("raft-snapshot.bin")];
        for file in &files {
            write(file, 0o644);
        }
        write(&dir.join("token"), 0o777);

        let _umask = UMASK_TESTS.lock().expect("umask lock");
        secure_data_dir(&dir).expect("secured");

        for path in [&dir, &pki, &deep, &dir.join("db"), &dir.join("db").join("tables")] {
            assert_eq!(mode(path), PRIVATE_DIR_MODE, "{}", path.display());
        }
        for file in files.iter().chain([&dir.join("token")]) {
            assert_eq!(mode(file), PRIVATE_FILE_MODE, "{}", file.display());
        }
        assert_eq!(mode(&outside), 0o644, "a link's target outside the directory is not touched");
    }

    #[test]
    fn a_missing_data_directory_is_created_private() {
        let root = tempfile::tempdir().expect("temporary directory");
        let dir = root.path().join("new").join("data");
        let _umask = UMASK_TESTS.lock().expect("umask lock");
        secure_data_dir(&dir).expect("secured");
        assert_eq!(mode(&dir), PRIVATE_DIR_MODE);
        std::fs::write(dir.join("later"), b"x").expect("write");
        assert_eq!(mode(&dir.join("later")), PRIVATE_FILE_MODE, "files created afterwards are private");
    }
}
