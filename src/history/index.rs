//! The History's index of one output folder: entries newest first, kept as
//! JSON in the studio's cache and refreshed incrementally: a file whose
//! size and modification time are unchanged is not read again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::history::entry::{EXTENSIONS, Family, HistoryEntry};

/// Folders below the output folder that are walked at most this deep.
const MAX_DEPTH: usize = 4;

/// What a refresh did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Files whose metadata was read (new or changed).
    pub read: usize,
    /// Files taken over from the index unchanged.
    pub kept: usize,
    /// Entries whose file is gone.
    pub removed: usize,
}

/// The index as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    dir: PathBuf,
    entries: Vec<HistoryEntry>,
}

const VERSION: u32 = 1;

/// One folder's listed outputs.
pub struct HistoryIndex {
    dir: PathBuf,
    /// Where the index is kept (`None`: not kept).
    file: Option<PathBuf>,
    entries: Vec<HistoryEntry>,
}

impl HistoryIndex {
    /// The index of `dir` kept in `cache` (read if present; a damaged or
    /// foreign index file is ignored and rebuilt).
    pub fn open(dir: &Path, cache: Option<&Path>) -> Self {
        let file = cache.map(|c| c.join("history").join(format!("{:016x}.json", fnv1a(dir))));
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|s| s.version == VERSION && s.dir == dir)
            .map(|s| s.entries)
            .unwrap_or_default();
        Self { dir: dir.to_owned(), file, entries }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, newest first.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// Walks the folder: new and changed files are read, gone ones dropped;
    /// then the index is saved (a cache that cannot be written is skipped).
    pub fn refresh(&mut self) -> Refresh {
        let mut known: HashMap<PathBuf, HistoryEntry> =
            std::mem::take(&mut self.entries).into_iter().map(|e| (e.path.clone(), e)).collect();
        let mut found = Vec::new();
        walk(&self.dir, 0, &mut found);
        let mut report = Refresh::default();
        for (path, modified_ns, size) in found {
            match known.remove(&path) {
                Some(entry) if entry.modified_ns == modified_ns && entry.size == size => {
                    report.kept += 1;
                    self.entries.push(entry);
                }
                _ => {
                    report.read += 1;
                    self.entries.push(HistoryEntry::read(&path, modified_ns, size));
                }
            }
        }
        report.removed = known.len();
        self.entries.sort_by(|a, b| b.modified_ns.cmp(&a.modified_ns).then_with(|| b.path.cmp(&a.path)));
        self.save();
        report
    }

    /// Removes `path`'s entry (after the file was moved away).
    pub fn forget(&mut self, path: &Path) {
        self.entries.retain(|e| e.path != path);
    }

    /// Entries matching `query` (every word, see [`HistoryEntry::matches`])
    /// and, when given, of `family`, newest first.
    pub fn search<'a>(&'a self, query: &'a str, family: Option<Family>) -> impl Iterator<Item = &'a HistoryEntry> + 'a {
        self.entries.iter().filter(move |e| family.is_none_or(|f| e.family == f) && e.matches(query))
    }

    fn save(&self) {
        let Some(file) = &self.file else { return };
        let stored = Stored { version: VERSION, dir: self.dir.clone(), entries: self.entries.clone() };
        let Ok(json) = serde_json::to_vec(&stored) else { return };
        // Written aside and renamed, so a crash never leaves half an index.
        let partial = file.with_extension("json.partial");
        let written =
            file.parent().map(std::fs::create_dir_all).transpose().and_then(|_| std::fs::write(&partial, json));
        if written.and_then(|()| std::fs::rename(&partial, file)).is_err() {
            let _ = std::fs::remove_file(&partial);
        }
    }
}

/// Listed files under `dir`: (path, modified in ns, size); hidden entries skipped.
fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, out);
            }
            continue;
        }
        let listed =
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e.to_lowercase().as_str()));
        if listed && meta.is_file() {
            let modified =
                meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64);
            out.push((path, modified, meta.len()));
        }
    }
}

/// FNV-1a of the folder's path: the index file's name.
fn fnv1a(path: &Path) -> u64 {
    path.to_string_lossy().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// A thumbnail of `entry` (the first frame of an animation) at most `side`
/// pixels, from the thumbnail cache under `cache` when the file has not
/// changed since, else made and cached.
pub fn thumbnail(entry: &crate::history::HistoryEntry, side: u32, cache: Option<&Path>) -> Option<image::RgbaImage> {
    let key = format!("{:016x}-{}-{side}.png", fnv1a(&entry.path), entry.modified_ns);
    let cached = cache.map(|c| c.join("thumbnails").join(key));
    if let Some(img) = cached.as_ref().and_then(|p| image::open(p).ok()) {
        return Some(img.to_rgba8());
    }
    let small = image::open(&entry.path).ok()?.thumbnail(side, side).to_rgba8();
    if let Some(path) = cached
        && path.parent().map(std::fs::create_dir_all).transpose().is_ok()
    {
        let _ = small.save(&path); // a cache that cannot be written is skipped
    }
    Some(small)
}
