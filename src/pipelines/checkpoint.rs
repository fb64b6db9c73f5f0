//! Checkpoint folders that are replaced whole: files are written into a fresh
//! sibling folder that then takes the old one's place, so a crash mid-save
//! never leaves weights from one step next to optimiser state from another.

use std::path::{Path, PathBuf};

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Writes a new version of `dir` with `write(staging)`, then swaps it in.
/// Errors name the file or folder that failed.
pub fn replace_folder<E>(
    dir: &Path,
    file_err: impl Fn(&Path, std::io::Error) -> E,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let staging = sibling(dir, "new");
    let previous = sibling(dir, "old");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| file_err(&staging, e))?;
    write(&staging)?;
    let _ = std::fs::remove_dir_all(&previous);
    if dir.exists() {
        std::fs::rename(dir, &previous).map_err(|e| file_err(dir, e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| file_err(dir, e))?;
    let _ = std::fs::remove_dir_all(&previous);
    Ok(())
}

/// The folder to read a checkpoint from: `dir`, or the previous version left
/// beside it if a save was interrupted between its two renames. `marker` is a
/// file every complete checkpoint has.
pub fn readable_folder(dir: &Path, marker: &str) -> PathBuf {
    let previous = sibling(dir, "old");
    if !dir.join(marker).exists() && previous.join(marker).exists() { previous } else { dir.to_owned() }
}
