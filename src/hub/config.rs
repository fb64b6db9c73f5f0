//! Where the Hub is, where its files are kept and who we are to it, read
//! from the same environment variables and files as Python's
//! `huggingface_hub`, so a machine set up for one is set up for the other.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The public Hub, unless `HF_ENDPOINT` names another (a mirror, or a test server).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// An access token. It is sent only in the `Authorization` header and is
/// never printed: `Debug` shows whether one is set, not its value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from text as users paste or store it (surrounding whitespace
    /// and line breaks removed); `None` if nothing is left.
    pub fn parse(text: &str) -> Option<Self> {
        let cleaned: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let cleaned = cleaned.trim();
        (!cleaned.is_empty()).then(|| Self(cleaned.to_owned()))
    }

    /// The token itself, to store it (never to show or log it).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header's value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(hidden)")
    }
}

/// The Hub settings in force.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Base URL, without a trailing slash.
    pub endpoint: String,
    /// The hub cache (`models--owner--name/…` folders live here).
    pub cache_dir: PathBuf,
    /// `HF_HOME`: where the token file is.
    pub home: PathBuf,
    pub token: Option<Token>,
    /// `HF_HUB_OFFLINE`: answer from the cache only, never connect.
    pub offline: bool,
}

/// `huggingface_hub`'s reading of a boolean variable.
fn is_true(value: Option<OsString>) -> bool {
    value.is_some_and(|v| matches!(v.to_string_lossy().trim().to_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
}

impl HubConfig {
    /// The settings from this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(&|name| std::env::var_os(name))
    }

    /// The settings from the variables `var` returns (tests pass their own).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<OsString>) -> Self {
        let path = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = path("HF_HOME").unwrap_or_else(|| {
            let cache = path("XDG_CACHE_HOME")
                .unwrap_or_else(|| path("HOME").or_else(|| path("USERPROFILE")).unwrap_or_default().join(".cache"));
            cache.join("huggingface")
        });
        let cache_dir =
            path("HF_HUB_CACHE").or_else(|| path("HUGGINGFACE_HUB_CACHE")).unwrap_or_else(|| home.join("hub"));
        let endpoint = var("HF_ENDPOINT")
            .map(|v| v.to_string_lossy().trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let token = if is_true(var("HF_HUB_DISABLE_IMPLICIT_TOKEN")) {
            None
        } else {
            let from_var = |name: &str| var(name).and_then(|v| Token::parse(&v.to_string_lossy()));
            from_var("HF_TOKEN").or_else(|| from_var("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
                let file = path("HF_TOKEN_PATH").unwrap_or_else(|| home.join("token"));
                read_token_file(&file)
            })
        };
        let offline = is_true(var("HF_HUB_OFFLINE")) || is_true(var("TRANSFORMERS_OFFLINE"));
        Self { endpoint, cache_dir, home, token, offline }
    }
}

/// Saves `token` where `hf auth login` keeps it (`{home}/token`), readable
/// and writable by the owner only (written whole, then renamed over the old one).
pub fn save_token(home: &Path, token: &Token) -> std::io::Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(home)?;
    let path = home.join("token");
    let temporary = home.join(".token.tmp-latent-studio");
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(token.0.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)?;
    Ok(path)
}

/// The token stored in `path`, if the file exists and holds one.
fn read_token_file(path: &Path) -> Option<Token> {
    std::fs::read_to_string(path).ok().and_then(|text| Token::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> HubConfig {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        HubConfig::from_vars(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_follow_huggingface_hub() {
        let c = config(&[("HOME", "/home/ada")]);
        assert_eq!(c.endpoint, "https://huggingface.co");
        assert_eq!(c.home, Path::new("/home/ada/.cache/huggingface"));
        assert_eq!(c.cache_dir, Path::new("/home/ada/.cache/huggingface/hub"));
        assert!(!c.offline && c.token.is_none());
        let c = config(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(c.cache_dir, Path::new("/x/huggingface/hub"));
    }

    #[test]
    fn variables_override_in_huggingface_hubs_order() {
        let c = config(&[
            ("HF_HOME", "/hf"),
            ("HUGGINGFACE_HUB_CACHE", "/old"),
            ("HF_ENDPOINT", "http://127.0.0.1:8080/"),
            ("HF_HUB_OFFLINE", "yes"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_old"),
        ]);
        assert_eq!((c.endpoint.as_str(), c.cache_dir.as_path()), ("http://127.0.0.1:8080", Path::new("/old")));
        assert!(c.offline);
        assert_eq!(c.token, Token::parse("hf_old"));
        let c = config(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/new"), ("HUGGINGFACE_HUB_CACHE", "/old")]);
        assert_eq!(c.cache_dir, Path::new("/new"));
        let c = config(&[("HF_TOKEN", " hf_new\n"), ("HUGGING_FACE_HUB_TOKEN", "hf_old")]);
        assert_eq!(c.token, Token::parse("hf_new"));
        assert!(!config(&[("HF_HUB_OFFLINE", "0")]).offline);
    }

    #[test]
    fn the_token_file_is_read_and_the_token_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_secret_value\n").unwrap();
        let home = dir.path().to_string_lossy().into_owned();
        let c = config(&[("HF_HOME", &home)]);
        assert_eq!(c.token.as_ref().map(Token::bearer).as_deref(), Some("Bearer hf_secret_value"));
        assert!(!format!("{c:?}").contains("secret"));
        assert!(config(&[("HF_HOME", &home), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]).token.is_none());
        assert!(Token::parse(" \r\n").is_none());
    }

    #[test]
    fn a_saved_token_is_the_owners_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("hf");
        let token = Token::parse("hf_saved_secret").unwrap();
        let path = save_token(&home, &token).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let home_text = home.to_string_lossy().into_owned();
        assert_eq!(config(&[("HF_HOME", &home_text)]).token, Some(token.clone()));
        save_token(&home, &Token::parse("hf_other").unwrap()).unwrap();
        assert_eq!(config(&[("HF_HOME", &home_text)]).token, Token::parse("hf_other"));
    }
}
