//! Local state files: atomic writes (a fresh, randomly named temp file opened with no-follow
//! and exclusive-create, fsync, rename, directory fsync), private key files (created 0600;
//! refused on load when group- or world-readable), private state directories (0700, owned by
//! the user running; refused otherwise) and stray temp files a crash left. Owns no protocol.

use std::io::Write as _;
use std::path::Path;

use crate::transport::ClientError;

pub(crate) fn storage(path: &Path, message: impl std::fmt::Display) -> ClientError {
    ClientError::Storage {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Replace `path` with `bytes` atomically; `private` makes the file 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), ClientError> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|error| storage(dir, error))?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("state");
    // A name nobody can guess, created new and never through a symlink: whoever else can
    // write to `dir` cannot make this write land in a file of their choice.
    let random = approvd_proto::ids::encode_b64(&approvd_proto::random_bytes::<12>());
    let temp = dir.join(format!(".{name}.{random}{TEMP_SUFFIX}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
        if private {
            options.mode(0o600);
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // Make the rename itself durable.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|error| storage(path, error))
}

/// How every temp file of [`write_atomic`] ends.
const TEMP_SUFFIX: &str = ".tmp";

/// Remove the temp files [`write_atomic`] left in `dir` when a process died mid-write (full
/// copies of the state, secrets included) and that are older than `min_age` (a younger one may
/// belong to a write still under way). Returns how many were removed.
pub fn remove_stray_temps(dir: &Path, min_age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    entries
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
        })
        .filter(|entry| {
            // Not through a link: a planted link is removed as a stray, its target left alone.
            std::fs::symlink_metadata(entry.path())
                .ok()
                .filter(|meta| !meta.is_dir())
                .and_then(|meta| meta.modified().ok())
                .map(|modified| now.duration_since(modified).unwrap_or_default())
                .is_some_and(|age| age >= min_age)
        })
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}

/// Create `dir` (and its parents) if missing, making `dir` itself 0700 when this call created
/// it or it is empty (a directory made by `mktemp -d` or an installer).
pub fn create_private_dir(dir: &Path) -> Result<(), ClientError> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|error| storage(dir, error))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let empty = std::fs::read_dir(dir)
            .map_err(|error| storage(dir, error))?
            .next()
            .is_none();
        if created || empty {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|error| storage(dir, error))?;
        }
    }
    #[cfg(not(unix))]
    let _ = created;
    Ok(())
}

/// Refuse a state directory that another user could enter or change, or that belongs to
/// someone other than the user running: its lock, its secrets and its temp files must be
/// reachable by that one user only (a process of another account holding the lock, or
/// planting a link, is an attack).
pub fn check_private_dir(dir: &Path) -> Result<(), ClientError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::symlink_metadata(dir).map_err(|error| storage(dir, error))?;
        if !meta.is_dir() {
            return Err(storage(
                dir,
                "is not a directory (a symlink is not accepted)",
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(storage(
                dir,
                format!(
                    "other users can enter this directory (mode {mode:o}); it holds the state \
                     lock and secrets: run `chmod 700` on it"
                ),
            ));
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(storage(
                dir,
                format!(
                    "belongs to uid {} but this process runs as uid {me}: run it as the \
                     directory's owner (files written here would otherwise change owner)",
                    meta.uid()
                ),
            ));
        }
    }
    Ok(())
}

/// Read a file that holds secrets, refusing one that others can read.
pub fn read_private(path: &Path) -> Result<Vec<u8>, ClientError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|error| storage(path, error))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(storage(
                path,
                format!(
                    "holds secrets but is readable by others (mode {:o}); run `chmod 600` on it",
                    mode & 0o777
                ),
            ));
        }
    }
    std::fs::read(path).map_err(|error| storage(path, error))
}

/// Read and parse a JSON state file (private or not).
pub fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    private: bool,
) -> Result<T, ClientError> {
    let bytes = if private {
        read_private(path)?
    } else {
        std::fs::read(path).map_err(|error| storage(path, error))?
    };
    serde_json::from_slice(&bytes)
        .map_err(|error| storage(path, format!("not valid state: {error}")))
}

/// Serialize and write a JSON state file atomically.
pub fn write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
    private: bool,
) -> Result<(), ClientError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("state serializes");
    bytes.push(b'\n');
    write_atomic(path, &bytes, private)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("approvd-files-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn private_files_are_0600_and_readable_back() {
        let dir = temp_dir("private");
        let path = dir.join("key");
        write_atomic(&path, b"secret", true).expect("write");
        assert_eq!(read_private(&path).expect("read"), b"secret");
        write_atomic(&path, b"second", true).expect("overwrite");
        assert_eq!(read_private(&path).expect("read"), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn a_write_never_follows_a_planted_link_and_stray_temps_are_removed() {
        let dir = temp_dir("planted");
        std::fs::create_dir_all(&dir).expect("dir");
        let victim = dir.join("victim");
        std::fs::write(&victim, b"original").expect("victim");
        // The old, guessable temp names (pid-based), planted as links to the victim.
        for pid in [std::process::id(), std::process::id() + 1] {
            std::os::unix::fs::symlink(&victim, dir.join(format!(".state.{pid}.tmp")))
                .expect("plant");
        }
        let state = dir.join("state");
        write_atomic(&state, b"new state", true).expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"original");
        assert_eq!(std::fs::read(&state).expect("state"), b"new state");
        assert!(!std::fs::symlink_metadata(&state)
            .expect("state")
            .is_symlink());
        // A crash's leftover: removed once old enough, kept while it may still be written.
        let stray = dir.join(".state.AAAAAAAAAAAAAAAA.tmp");
        std::fs::write(&stray, b"secret copy").expect("stray");
        assert_eq!(
            remove_stray_temps(&dir, std::time::Duration::from_secs(3600)),
            0
        );
        assert!(stray.exists());
        let removed = remove_stray_temps(&dir, std::time::Duration::ZERO);
        assert_eq!(removed, 3, "the stray copy and the two planted links");
        assert!(!stray.exists());
        assert_eq!(std::fs::read(&victim).expect("victim"), b"original");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn a_state_directory_others_can_enter_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("private-dir");
        create_private_dir(&dir).expect("create");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        check_private_dir(&dir).expect("a 0700 directory of ours is fine");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let error = check_private_dir(&dir).expect_err("refused");
        assert!(error.to_string().contains("chmod 700"), "{error}");
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).expect("link");
        assert!(
            check_private_dir(&link).is_err(),
            "a symlinked home is refused"
        );
        std::fs::remove_file(&link).expect("cleanup");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = temp_dir("loose");
        let path = dir.join("key");
        write_atomic(&path, b"secret", true).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read_private(&path).expect_err("refused");
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
