//! Moving outputs to the desktop's trash (the freedesktop.org Trash
//! specification: `$XDG_DATA_HOME/Trash/files` with a `.trashinfo` each,
//! which file managers list and restore) and back, for the History's undo.

use std::path::{Path, PathBuf};

use crate::history::entry::civil_date;

/// A file in the trash: where it is and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trashed {
    pub original: PathBuf,
    pub in_trash: PathBuf,
    pub info: PathBuf,
}

/// The home trash: `$XDG_DATA_HOME/Trash` or `~/.local/share/Trash`.
pub fn home_trash() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("Trash"))
}

/// Percent-encodes a path for `Path=` (the spec's URL escaping; '/' kept).
fn escape(path: &Path) -> String {
    path.to_string_lossy()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Renames, or copies and removes across file systems.
fn relocate(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
    }
}

/// Moves `file` into `trash`; the name gets a number when taken.
pub fn move_to_trash(file: &Path, trash: &Path) -> Result<Trashed, String> {
    let original = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (files, infos) = (trash.join("files"), trash.join("info"));
    for dir in [&files, &infos] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot use the trash {}: {e}", dir.display()))?;
    }
    let name = original.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
    let when = deletion_date();
    for n in 1..10_000 {
        let candidate = if n == 1 { name.clone() } else { format!("{n}.{name}") };
        let info = infos.join(format!("{candidate}.trashinfo"));
        // The info file is created first and exclusively: it reserves the name.
        let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&info);
        let mut handle = match created {
            Ok(h) => h,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot write {}: {e}", info.display())),
        };
        let text = format!("[Trash Info]\nPath={}\nDeletionDate={when}\n", escape(&original));
        let in_trash = files.join(&candidate);
        let moved =
            std::io::Write::write_all(&mut handle, text.as_bytes()).and_then(|()| relocate(&original, &in_trash));
        if let Err(e) = moved {
            let _ = std::fs::remove_file(&info);
            return Err(format!("cannot move {} to the trash: {e}", original.display()));
        }
        return Ok(Trashed { original, in_trash, info });
    }
    Err(format!("the trash {} has no free name for {name}", trash.display()))
}

/// Puts a trashed file back (refused if something new took its place).
pub fn restore(trashed: &Trashed) -> Result<(), String> {
    if trashed.original.exists() {
        return Err(format!("{} exists again; the trashed copy stays in the trash", trashed.original.display()));
    }
    relocate(&trashed.in_trash, &trashed.original)
        .map_err(|e| format!("cannot restore {}: {e}", trashed.original.display()))?;
    let _ = std::fs::remove_file(&trashed.info);
    Ok(())
}

/// Local time is not known without a time-zone database; the spec's
/// `DeletionDate` is written in UTC, `YYYY-MM-DDThh:mm:ss`.
fn deletion_date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{}T{:02}:{:02}:{:02}", civil_date(secs as i64), day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trashed_file_comes_back_and_names_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let trash = dir.path().join("Trash");
        let file = dir.path().join("out put.png");
        std::fs::write(&file, b"one").unwrap();
        let first = move_to_trash(&file, &trash).unwrap();
        assert!(!file.exists() && first.in_trash.exists());
        let info = std::fs::read_to_string(&first.info).unwrap();
        assert!(info.starts_with("[Trash Info]\nPath=/") && info.contains("out%20put.png"), "{info}");
        std::fs::write(&file, b"two").unwrap();
        let second = move_to_trash(&file, &trash).unwrap();
        assert_ne!(first.in_trash, second.in_trash);
        restore(&second).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert!(restore(&first).is_err(), "the name is taken again");
        assert!(first.in_trash.exists(), "and the trashed copy is kept");
    }
}
