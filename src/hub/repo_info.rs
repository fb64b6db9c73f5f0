//! A repo's description as the Hub's API gives it
//! (`GET /api/models/{repo}[/revision/{rev}]?blobs=true`): the commit it
//! resolves to, whether it is gated, its licence (from the model card's
//! metadata) and every file with its size and, for files stored in LFS, the
//! sha256 a download is checked against. A server's answer is checked as
//! outside input: a commit, checksum or path that is not well formed is
//! refused, so nothing it says can point outside the cache.

use serde::Deserialize;

use super::cache::{check_repo_path, is_commit};
use super::quant::quant_label;

/// Why an answer cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RepoInfoError {
    #[error("not a repo description: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the repo description names commit {0:?}, which is not a commit hash")]
    Commit(String),
    #[error("the repo description lists {0:?}, which is not a file path inside a repo")]
    Path(String),
    #[error("the repo description gives {path} the checksum {sha256:?}, which is not a sha256")]
    Checksum { path: String, sha256: String },
}

/// Whether users must ask for access before downloading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gated {
    No,
    /// Access is granted on request, automatically.
    Auto,
    /// The owners approve each request.
    Manual,
}

/// One file of a repo.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepoFile {
    /// `/`-separated, checked (`cache::check_repo_path`).
    pub path: String,
    /// Bytes, when the server said.
    pub size: Option<u64>,
    /// Lower-case hex sha256 of the content, for files kept in LFS (all weights).
    pub sha256: Option<String>,
}

impl RepoFile {
    /// The quantization a GGUF file's name announces (`Q4_K_M`, …).
    pub fn quant(&self) -> Option<String> {
        self.path.to_ascii_lowercase().ends_with(".gguf").then(|| quant_label(&self.path)).flatten()
    }
}

/// What the studio needs to know about a repo at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoInfo {
    /// The commit the revision resolved to.
    pub commit: String,
    pub gated: Gated,
    /// The model card's `license` (several joined with ", ").
    pub license: Option<String>,
    pub files: Vec<RepoFile>,
}

#[derive(Deserialize)]
struct Raw {
    sha: String,
    #[serde(default)]
    gated: serde_json::Value,
    #[serde(default, rename = "cardData")]
    card: Option<serde_json::Value>,
    #[serde(default)]
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<RawLfs>,
}

#[derive(Deserialize)]
struct RawLfs {
    sha256: String,
    #[serde(default)]
    size: Option<u64>,
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads the JSON body of a repo-info answer.
pub fn parse_repo_info(json: &[u8]) -> Result<RepoInfo, RepoInfoError> {
    let raw: Raw = serde_json::from_slice(json)?;
    if !is_commit(&raw.sha) {
        return Err(RepoInfoError::Commit(raw.sha));
    }
    let gated = match raw.gated.as_str() {
        Some("manual") => Gated::Manual,
        Some(_) => Gated::Auto,
        None if raw.gated.as_bool() == Some(true) => Gated::Auto,
        None => Gated::No,
    };
    let license = raw.card.as_ref().and_then(|card| match card.get("license")? {
        serde_json::Value::String(one) => Some(one.clone()),
        serde_json::Value::Array(many) => {
            let names: Vec<&str> = many.iter().filter_map(|v| v.as_str()).collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        _ => None,
    });
    let files = raw
        .siblings
        .into_iter()
        .map(|s| {
            check_repo_path(&s.rfilename).map_err(|_| RepoInfoError::Path(s.rfilename.clone()))?;
            let (size, sha256) = match s.lfs {
                Some(lfs) if is_sha256(&lfs.sha256) => (lfs.size.or(s.size), Some(lfs.sha256.to_ascii_lowercase())),
                Some(lfs) => return Err(RepoInfoError::Checksum { path: s.rfilename, sha256: lfs.sha256 }),
                None => (s.size, None),
            };
            Ok(RepoFile { path: s.rfilename, size, sha256 })
        })
        .collect::<Result<_, _>>()?;
    Ok(RepoInfo { commit: raw.sha.to_ascii_lowercase(), gated, license, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `?blobs=true` answer in the real shape, fields we do not read included (values made up).
    const ANSWER: &str = r#"{
        "_id": "621ffdc136468d709f17b9d5", "id": "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        "modelId": "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "author": "HuggingFaceTB",
        "sha": "0123456789ABCDEF0123456789abcdef01234567", "lastModified": "2024-11-01T00:00:00.000Z",
        "private": false, "disabled": false, "gated": false, "downloads": 1000, "likes": 10,
        "tags": ["gguf", "license:apache-2.0"], "cardData": {"license": "apache-2.0", "language": ["en"]},
        "gguf": {"total": 134515008, "architecture": "llama", "context_length": 8192},
        "siblings": [
            {"rfilename": ".gitattributes", "size": 1570, "blobId": "a6344aac8c09253b3b630fb776ae94478aa0275b"},
            {"rfilename": "README.md", "size": 2200, "blobId": "b7e2c0f1"},
            {"rfilename": "smollm2-135m-instruct-q8_0.gguf", "size": 144811488, "blobId": "c1d2",
             "lfs": {"sha256": "E6B0CE3F7E6B7B7AFBFFD2A2BE3C4C8F4D4A8B3D2C1B0A9F8E7D6C5B4A392817", "size": 144811488, "pointerSize": 135}},
            {"rfilename": "sub/SmolLM2-135M-Instruct-Q4_K_M.gguf", "blobId": "d3e4",
             "lfs": {"sha256": "2e8040ce0f0d4d2b3b1e5c7a9f0e1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6", "size": 105454432, "pointerSize": 135}}
        ],
        "spaces": [], "createdAt": "2024-10-31T00:00:00.000Z", "usedStorage": 250265920
    }"#;

    #[test]
    fn a_repo_answer_gives_commit_licence_and_checked_files() {
        let info = parse_repo_info(ANSWER.as_bytes()).unwrap();
        assert_eq!(info.commit, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!((info.gated, info.license.as_deref()), (Gated::No, Some("apache-2.0")));
        let paths: Vec<&str> = info.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [".gitattributes", "README.md", "smollm2-135m-instruct-q8_0.gguf", "sub/SmolLM2-135M-Instruct-Q4_K_M.gguf"]
        );
        assert_eq!((info.files[1].size, info.files[1].sha256.as_deref()), (Some(2200), None));
        let q8 = &info.files[2];
        assert_eq!(q8.sha256.as_deref(), Some("e6b0ce3f7e6b7b7afbffd2a2be3c4c8f4d4a8b3d2c1b0a9f8e7d6c5b4a392817"));
        let quants: Vec<Option<String>> = info.files.iter().map(RepoFile::quant).collect();
        assert_eq!(quants, [None, None, Some("Q8_0".into()), Some("Q4_K_M".into())]);
        assert_eq!(info.files[3].size, Some(105454432), "the LFS size when the sibling has none");
    }

    #[test]
    fn gated_repos_and_licence_lists_are_read() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let manual = format!(r#"{{"sha": "{c}", "gated": "manual", "cardData": {{"license": ["mit", "other"]}}}}"#);
        let info = parse_repo_info(manual.as_bytes()).unwrap();
        assert_eq!((info.gated, info.license.as_deref()), (Gated::Manual, Some("mit, other")));
        let auto = format!(r#"{{"sha": "{c}", "gated": "auto"}}"#);
        assert_eq!(parse_repo_info(auto.as_bytes()).unwrap().gated, Gated::Auto);
    }

    #[test]
    fn a_lying_answer_is_refused_with_what_was_wrong() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        let cases = [
            (r#"{"sha": "main"}"#.to_owned(), "not a commit hash"),
            (format!(r#"{{"sha": "{c}", "siblings": [{{"rfilename": "../../etc/passwd"}}]}}"#), "not a file path"),
            (
                format!(r#"{{"sha": "{c}", "siblings": [{{"rfilename": "a.gguf", "lfs": {{"sha256": "zz"}}}}]}}"#),
                "not a sha256",
            ),
            ("<html>busy</html>".to_owned(), "not a repo description"),
        ];
        for (answer, expected) in cases {
            let message = parse_repo_info(answer.as_bytes()).unwrap_err().to_string();
            assert!(message.contains(expected), "{answer}: {message}");
        }
    }
}
