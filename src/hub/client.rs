//! The two questions the studio asks the Hub before downloading: what a
//! repo holds at a revision (`GET /api/models/{repo}[/revision/{rev}]?blobs=true`)
//! and where one file's bytes are (`HEAD /{repo}/resolve/{rev}/{path}`:
//! its commit, ETag, size and download address).

use super::cache::{RepoId, check_repo_path, is_commit};
use super::http::{Hub, HubError, Method, header, quote};
use super::repo_info::{RepoInfo, parse_repo_info};

/// The largest repo description read (a repo with 100k files is ~15 MB).
const MAX_REPO_INFO_BYTES: u64 = 64 << 20;

/// What a `HEAD` on a file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMetadata {
    /// The commit the revision resolved to.
    pub commit: String,
    /// The blob's name in the cache: the sha256 for LFS files, the git blob id otherwise.
    pub etag: String,
    pub size: Option<u64>,
    /// Where the bytes are (the CDN's address, or the resolve URL itself).
    pub location: String,
}

impl Hub {
    fn resolve_url(&self, repo: &RepoId, revision: &str, path: &str) -> String {
        format!("{}/{repo}/resolve/{}/{}", self.config().endpoint, quote(revision, false), quote(path, true))
    }

    /// The repo's commit, gating, licence and files at `revision`.
    pub fn repo_info(&self, repo: &RepoId, revision: &str) -> Result<RepoInfo, HubError> {
        if self.config().offline {
            return Err(HubError::Offline { what: format!("the file list of {repo}") });
        }
        let base = format!("{}/api/models/{repo}", self.config().endpoint);
        let url = if revision == "main" {
            format!("{base}?blobs=true")
        } else {
            format!("{base}/revision/{}?blobs=true", quote(revision, false))
        };
        let response = self.request(Method::Get, &url, None, true)?;
        if !response.status().is_success() {
            return Err(self.status_error(&response, &url, repo, revision));
        }
        let body = response
            .into_body()
            .into_with_config()
            .limit(MAX_REPO_INFO_BYTES)
            .read_to_vec()
            .map_err(|e| HubError::Connect { server: url.clone(), detail: e.to_string() })?;
        parse_repo_info(&body).map_err(|e| HubError::BadAnswer { url, detail: e.to_string() })
    }

    /// `HEAD` on a file: its commit, ETag, size and download address.
    pub fn file_metadata(&self, repo: &RepoId, revision: &str, path: &str) -> Result<FileMetadata, HubError> {
        let url = self.resolve_url(repo, revision, path);
        let response = self.request(Method::Head, &url, None, false)?;
        let status = response.status();
        if !(status.is_success() || status.is_redirection()) {
            return Err(self.status_error(&response, &url, repo, path));
        }
        let bad = |detail: &str| HubError::BadAnswer { url: url.clone(), detail: detail.to_owned() };
        let commit = header(&response, "x-repo-commit")
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| is_commit(c))
            .ok_or_else(|| bad("no X-Repo-Commit header with a commit hash"))?;
        let etag = header(&response, "x-linked-etag")
            .or_else(|| header(&response, "etag"))
            .and_then(|e| blob_name(&e))
            .ok_or_else(|| bad("no usable ETag"))?;
        let size = header(&response, "x-linked-size")
            .or_else(|| status.is_success().then(|| header(&response, "content-length")).flatten())
            .and_then(|s| s.trim().parse().ok());
        let location = if status.is_redirection() {
            header(&response, "location").unwrap_or_else(|| url.clone())
        } else {
            url.clone()
        };
        Ok(FileMetadata { commit, etag, size, location })
    }
}

/// The blob name an ETag header gives, if it is a safe one.
pub fn blob_name(etag_header: &str) -> Option<String> {
    Some(normalize_etag(etag_header)).filter(|e| is_blob_name(e))
}

/// An ETag without the weak marker and quotes (`W/"abc"` → `abc`).
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase()
}

/// Whether an ETag can name a blob file: hex (git's sha1 or LFS's sha256),
/// so a server cannot make it point elsewhere.
fn is_blob_name(etag: &str) -> bool {
    (8..=128).contains(&etag.len()) && etag.bytes().all(|b| b.is_ascii_hexdigit()) && check_repo_path(etag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_normalized_and_checked() {
        assert_eq!(normalize_etag("W/\"ABCdef0123\""), "abcdef0123");
        assert!(is_blob_name(&normalize_etag("\"0123456789abcdef\"")));
        assert!(!is_blob_name("../../etc"));
        assert!(!is_blob_name("short"));
    }
}
