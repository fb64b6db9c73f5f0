//! Backends' API keys, kept apart from the settings (which are plain text
//! the app rewrites at will) in one JSON file readable by its owner only,
//! as the Hub's token is. A key is never logged, shown, or written into
//! an output; the settings name a backend by its URL alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hub::config::Token;

/// The key file: a JSON object from backend URL to key.
#[derive(Clone, Debug)]
pub struct KeyStore {
    path: PathBuf,
}

impl KeyStore {
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// `$XDG_CONFIG_HOME/latent-studio/backend-keys.json` (or under `~/.config`).
    pub fn default_location() -> Option<Self> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
        Some(Self::at(config.join("latent-studio").join("backend-keys.json")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every key, by URL (none if the file is missing or unreadable).
    pub fn load(&self) -> BTreeMap<String, Token> {
        let Ok(text) = std::fs::read_to_string(&self.path) else { return BTreeMap::new() };
        parse_keys(&text)
    }

    /// Sets (or with `None`, forgets) the key of `url`.
    pub fn set(&self, url: &str, key: Option<&str>) -> std::io::Result<()> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_owned(),
            Err(e) => return Err(e),
        };
        let mut map: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
        match key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(key) => map.insert(url.to_owned(), key.to_owned()),
            None => map.remove(url),
        };
        let json = serde_json::to_vec_pretty(&map).map_err(std::io::Error::other)?;
        write_owner_only(&self.path, &json)
    }
}

/// The key file's text read: a JSON object from URL to key (a file that is
/// not one, or an empty key, gives nothing).
pub fn parse_keys(text: &str) -> BTreeMap<String, Token> {
    let map: BTreeMap<String, String> = serde_json::from_str(text).unwrap_or_default();
    map.into_iter().filter_map(|(url, key)| Token::parse(&key).map(|t| (url, t))).collect()
}

/// Writes `bytes` to `path` through a temporary file created owner-only
/// (0600 on Unix) and renamed over it, so the key is never readable by
/// others, even for a moment, and a crash leaves the old file whole.
fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::at(dir.path().join("sub").join("keys.json"));
        assert!(store.load().is_empty());
        store.set("http://a:1", Some(" sekret \n")).unwrap();
        store.set("http://b:2", Some("other")).unwrap();
        store.set("http://b:2", None).unwrap();
        let keys = store.load();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys["http://a:1"].bearer(), "Bearer sekret");
        assert!(!format!("{keys:?}").contains("sekret"), "keys never print");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
