//! Local state files: atomic writes (temp file + fsync + rename + directory fsync) and private
//! key files (created 0600; refused on load when group- or world-readable). Owns no protocol.

use std::io::Write as _;
use std::path::Path;

use crate::transport::ClientError;

fn storage(path: &Path, message: impl std::fmt::Display) -> ClientError {
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
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
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
