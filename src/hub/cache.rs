//! The hub cache as `huggingface_hub` lays it out, so files it downloaded
//! are found without a request and files we download are found by it:
//!
//! ```text
//! {cache}/models--{owner}--{name}/
//!     refs/{revision}                  the commit a branch or tag pointed to
//!     blobs/{etag}                     each file's bytes, named by its ETag (sha256 for LFS files)
//!     blobs/{etag}.incomplete          a download in progress (resumed from its length)
//!     snapshots/{commit}/{path}        relative symlinks into blobs/ (copies where links are refused)
//! ```

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a repo id or a file path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a repo id (owner/name: letters, digits, '-', '_', '.'; at most 96 characters)")]
    RepoId(String),
    #[error("{0:?} is not a file path inside a repo")]
    RepoPath(String),
}

/// A repo id: `name` or `owner/name`, as the Hub accepts them (checked, so
/// it is safe inside a folder name; also when read back from saved settings).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

impl TryFrom<String> for RepoId {
    type Error = NameError;

    fn try_from(id: String) -> Result<Self, NameError> {
        Self::parse(&id)
    }
}

impl From<RepoId> for String {
    fn from(id: RepoId) -> String {
        id.0
    }
}

impl RepoId {
    pub fn parse(id: &str) -> Result<Self, NameError> {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        };
        let parts: Vec<&str> = id.split('/').collect();
        let ok = id.len() <= 96
            && (1..=2).contains(&parts.len())
            && parts.iter().all(|p| part_ok(p))
            && !id.contains("--")
            && !id.contains("..");
        if ok { Ok(Self(id.to_owned())) } else { Err(NameError::RepoId(id.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `models--owner--name`.
    pub fn folder_name(&self) -> String {
        std::iter::once("models").chain(self.0.split('/')).collect::<Vec<_>>().join("--")
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's path inside a repo (`rfilename`): relative, `/`-separated,
/// without `..`, so it cannot point outside the snapshot folder.
pub fn check_repo_path(path: &str) -> Result<&str, NameError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        || Path::new(path).components().any(|c| !matches!(c, Component::Normal(_)));
    if bad { Err(NameError::RepoPath(path.to_owned())) } else { Ok(path) }
}

/// Whether `revision` is a full commit hash (used as it is, without a ref).
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One repo's folder in the cache.
#[derive(Clone, Debug)]
pub struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo: &RepoId) -> Self {
        Self { root: cache_dir.join(repo.folder_name()) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commit `revision` names: itself if it is one, else what
    /// `refs/{revision}` recorded; `None` if the cache does not know it.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_owned());
        }
        let recorded = std::fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let commit = recorded.trim();
        is_commit(commit).then(|| commit.to_owned())
    }

    /// The cached copy of `path` at `revision`, without a request.
    pub fn cached_file(&self, revision: &str, path: &str) -> Option<PathBuf> {
        let path = check_repo_path(path).ok()?;
        let commit = self.commit_of(revision)?;
        let file = self.root.join("snapshots").join(commit).join(path);
        file.is_file().then_some(file)
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// Where a download of `etag` accumulates until it is complete and checked.
    pub fn incomplete_blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// Records that `revision` points at `commit` (written whole, then renamed).
    pub fn write_ref(&self, revision: &str, commit: &str) -> io::Result<()> {
        if is_commit(revision) || revision == commit {
            return Ok(());
        }
        if check_repo_path(revision).is_err() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad revision {revision:?}")));
        }
        let file = self.root.join("refs").join(revision);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let temporary = file.with_extension("tmp-latent-studio");
        std::fs::write(&temporary, commit)?;
        std::fs::rename(&temporary, &file)
    }

    /// Makes `snapshots/{commit}/{path}` point at the blob `etag`: a
    /// relative symlink (`../../blobs/{etag}`, one more `../` per folder of
    /// `path`), or a copy where the system refuses links. Returns the path.
    pub fn link_snapshot(&self, commit: &str, path: &str, etag: &str) -> io::Result<PathBuf> {
        let path = check_repo_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        if !is_commit(commit) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad commit {commit:?}")));
        }
        let link = self.root.join("snapshots").join(commit).join(path);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let blob = self.blob(etag);
        let depth = path.split('/').count() + 1;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        match std::fs::symlink_metadata(&link) {
            Ok(_) => std::fs::remove_file(&link)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if symlink(&target, &link).is_err() {
            std::fs::copy(&blob, &link)?;
        }
        Ok(link)
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn repo_ids_and_paths_are_checked() {
        for good in ["gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "stabilityai/sd-turbo", "a.b_c/d-e.f"] {
            assert!(RepoId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b/c", "../x", "a/..", "a--b/c", "a/b c", "/abs", "a/", "-a/b", &"x".repeat(97)] {
            assert!(RepoId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RepoId::parse("owner/name").unwrap().folder_name(), "models--owner--name");
        for good in ["model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors", ".gitattributes"] {
            assert!(check_repo_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a\\b", "./a"] {
            assert!(check_repo_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_file_is_found_through_its_ref_and_snapshot_link() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RepoCache::new(dir.path(), &RepoId::parse("owner/name").unwrap());
        assert!(cache.cached_file("main", "unet/config.json").is_none());
        std::fs::create_dir_all(cache.blob("e1").parent().unwrap()).unwrap();
        std::fs::write(cache.blob("e1"), b"{}").unwrap();
        cache.write_ref("main", COMMIT).unwrap();
        let link = cache.link_snapshot(COMMIT, "unet/config.json", "e1").unwrap();
        #[cfg(unix)]
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../../blobs/e1"));
        assert_eq!(cache.cached_file("main", "unet/config.json"), Some(link.clone()));
        assert_eq!(cache.cached_file(COMMIT, "unet/config.json"), Some(link));
        assert_eq!(std::fs::read(cache.cached_file("main", "unet/config.json").unwrap()).unwrap(), b"{}");
        assert!(cache.cached_file("other-branch", "unet/config.json").is_none());
        assert!(cache.cached_file("main", "../refs/main").is_none());
    }
}
