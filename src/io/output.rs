//! Writing results to disk without ever overwriting a finished file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors while saving; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The target exists; the studio never overwrites.
    #[error("{0} already exists; choose another name (files are never overwritten)")]
    Exists(PathBuf),
    /// The folder or file could not be written (read-only, full disk, …).
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// The image could not be encoded.
    #[error("cannot encode {path}: {detail}")]
    Encode { path: PathBuf, detail: String },
}

/// Creates `path` (which must not exist) and writes `bytes`. A partial file
/// left by a failed write (e.g. a full disk) is removed.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(OutputError::Exists(path.to_owned()));
        }
        Err(source) => {
            return Err(OutputError::Write { path: path.to_owned(), source });
        }
    };
    if let Err(source) = file.write_all(bytes).and_then(|_| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(OutputError::Write { path: path.to_owned(), source });
    }
    Ok(())
}

/// Writes `bytes` into `dir` as `STEM-NNNN.EXT`, taking the first free number.
/// The check and the creation are one step, so two saves never collide.
pub fn save_numbered(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> Result<PathBuf, OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::Write { path: dir.to_owned(), source })?;
    let first = first_free_number(dir, stem, ext);
    for n in first..first + 10_000 {
        let path = dir.join(format!("{stem}-{n:04}.{ext}"));
        match write_new_file(&path, bytes) {
            Err(OutputError::Exists(_)) => continue,
            other => return other.map(|()| path),
        }
    }
    Err(OutputError::Exists(dir.join(format!("{stem}-*.{ext}"))))
}

/// One past the highest number already used for `STEM-NNNN.EXT` in `dir`.
fn first_free_number(dir: &Path, stem: &str, ext: &str) -> u32 {
    let prefix = format!("{stem}-");
    let suffix = format!(".{ext}");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 1;
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(&prefix)?.strip_suffix(&suffix)?.parse::<u32>().ok()
        })
        .max()
        .map_or(1, |n| n + 1)
}

/// The per-user default output folder: `$XDG_PICTURES_DIR` or `~/Pictures`,
/// then `Latent Studio` inside it.
pub fn default_output_dir() -> PathBuf {
    let pictures = std::env::var_os("XDG_PICTURES_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Pictures")));
    pictures.unwrap_or_else(|| PathBuf::from(".")).join("Latent Studio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        write_new_file(&path, b"first").unwrap();
        assert!(matches!(write_new_file(&path, b"second"), Err(OutputError::Exists(_))));
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }

    #[test]
    fn numbered_names_count_up() {
        let dir = tempfile::tempdir().unwrap();
        let a = save_numbered(dir.path(), "vae", "png", b"1").unwrap();
        let b = save_numbered(dir.path(), "vae", "png", b"2").unwrap();
        assert!(a.ends_with("vae-0001.png") && b.ends_with("vae-0002.png"), "{a:?} {b:?}");
    }

    #[test]
    fn read_only_folder_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        let mut perms = std::fs::metadata(&locked).unwrap().permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&locked, perms).unwrap();
        // Root ignores permissions; a file where the folder should be stops everyone.
        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, b"").unwrap();
        let err = save_numbered(&blocked.join("sub"), "x", "png", b"1").unwrap_err().to_string();
        assert!(err.contains("a-file"), "{err}");
        if std::fs::write(locked.join("probe"), b"").is_err() {
            let err = save_numbered(&locked, "x", "png", b"1").unwrap_err().to_string();
            assert!(err.contains("locked"), "{err}");
        }
    }
}
