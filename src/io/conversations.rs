//! Conversations on disk: one JSON file each in a folder, listed newest
//! first. A save replaces the file atomically (a temporary file renamed over
//! it), so a crash or a full disk leaves the previous version, never half a
//! file; a file that is not a conversation is reported by name and skipped.

use std::path::{Path, PathBuf};

use crate::spec::conversation::Conversation;

/// Longest file accepted as a conversation: far beyond any context window,
/// small enough that a stray large file is not read into memory.
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a conversation file could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// The file or folder cannot be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file is not a conversation this version can read.
    #[error("{path} is not a usable conversation: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// A saved conversation as the list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedConversation {
    /// Its file.
    pub path: PathBuf,
    /// Its shown title.
    pub title: String,
    /// How many messages it holds.
    pub messages: usize,
    /// Seconds since the Unix epoch of its last change.
    pub updated: u64,
}

impl SavedConversation {
    /// The list entry of `conversation`, saved at `path`.
    pub fn of(path: &Path, conversation: &Conversation) -> Self {
        Self {
            path: path.to_owned(),
            title: conversation.shown_title(),
            messages: conversation.messages.len(),
            updated: conversation.updated,
        }
    }
}

/// Puts `entry` in `list` (replacing the entry of the same file), newest first.
pub fn upsert(list: &mut Vec<SavedConversation>, entry: SavedConversation) {
    list.retain(|e| e.path != entry.path);
    list.push(entry);
    sort_newest_first(list);
}

fn sort_newest_first(list: &mut [SavedConversation]) {
    list.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.path.cmp(&b.path)));
}

/// `DIR/STEM.EXT`, or `DIR/STEM-N.EXT` with the first N from 2 that no file has.
pub fn free_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    (1..)
        .map(|n| if n == 1 { dir.join(format!("{stem}.{ext}")) } else { dir.join(format!("{stem}-{n}.{ext}")) })
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.{ext}")))
}

/// Reads and checks one conversation file.
pub fn load(path: &Path) -> Result<Conversation, ConversationError> {
    let io = |source| ConversationError::Io { path: path.to_owned(), source };
    let invalid = |detail: String| ConversationError::Invalid { path: path.to_owned(), detail };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(invalid(format!("{len} bytes is more than a conversation may hold ({MAX_FILE_BYTES})")));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    parse(&bytes).map_err(invalid)
}

/// A conversation from JSON bytes, checked.
pub fn parse(bytes: &[u8]) -> Result<Conversation, String> {
    let conversation: Conversation = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    conversation.validate().map_err(|e| e.0)?;
    Ok(conversation)
}

/// Writes `conversation` to `path`, replacing it atomically, stamped with the time.
pub fn save(path: &Path, conversation: &mut Conversation) -> Result<(), ConversationError> {
    let io = |source| ConversationError::Io { path: path.to_owned(), source };
    conversation.updated = now();
    let json = serde_json::to_vec_pretty(conversation).map_err(|e| io(std::io::Error::other(e)))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path.file_name().map_or_else(|| "conversation".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        std::io::Write::write_all(&mut file, &json)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temp, path)) {
        Ok(()) => Ok(()),
        Err(source) => {
            // A partial temporary file is of no use to anyone.
            let _ = std::fs::remove_file(&temp);
            Err(io(source))
        }
    }
}

/// A file name in `dir` for a new conversation that no file has yet.
pub fn new_path(dir: &Path, title: &str) -> PathBuf {
    let slug: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("-");
    let slug = if slug.is_empty() { "conversation".to_owned() } else { slug };
    free_path(dir, &slug, "json")
}

/// Every conversation in `dir`, newest first, and the files that could not
/// be read (each with the reason). A missing folder is an empty list.
pub fn list(dir: &Path) -> (Vec<SavedConversation>, Vec<ConversationError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Vec::new(), Vec::new()),
        Err(source) => return (Vec::new(), vec![ConversationError::Io { path: dir.to_owned(), source }]),
    };
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    let listed = |p: &PathBuf| {
        p.extension().is_some_and(|e| e == "json")
            && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
    };
    for path in entries.flatten().map(|e| e.path()).filter(listed) {
        match load(&path) {
            Ok(c) => found.push(SavedConversation::of(&path, &c)),
            Err(e) => failed.push(e),
        }
    }
    sort_newest_first(&mut found);
    (found, failed)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::text::SamplingParams;

    #[test]
    fn save_list_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Conversation::new(None, SamplingParams::greedy(), 32);
        c.push_user("What is a latent?");
        let path = new_path(dir.path(), &c.shown_title());
        assert_eq!(path.file_name().unwrap(), "what-is-a-latent.json");
        save(&path, &mut c).unwrap();
        assert_eq!(new_path(dir.path(), "What is a latent?").file_name().unwrap(), "what-is-a-latent-2.json");
        std::fs::write(dir.path().join("junk.json"), b"{\"format\": 3}").unwrap();
        let (found, failed) = list(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].title, "What is a latent?");
        assert_eq!(failed.len(), 1);
        assert!(failed[0].to_string().contains("junk.json"), "{}", failed[0]);
        assert_eq!(load(&path).unwrap(), c);
    }

    #[test]
    fn a_read_only_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
        let mut c = Conversation::new(None, SamplingParams::greedy(), 32);
        let result = save(&ro.join("c.json"), &mut c);
        // Root ignores permissions; elsewhere the error names the file.
        if let Err(e) = result {
            assert!(e.to_string().contains("c.json"), "{e}");
        }
    }
}
