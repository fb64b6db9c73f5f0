//! Pulling a repo: its description read once, the files chosen (the user's,
//! or the default selection), then each fetched in turn with one progress
//! count over all of them. The CLI's `pull` and the Models view's download
//! queue both run this.

use super::cache::RepoId;
use super::catalogue::default_selection;
use super::download::{FileRequest, Flow, Outcome, fetch_file};
use super::http::{Hub, HubError};
use super::repo_info::RepoFile;

/// What a pull will fetch (saved with the settings while unfinished).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PullPlan {
    pub repo: RepoId,
    pub revision: String,
    pub files: Vec<RepoFile>,
    pub license: Option<String>,
}

impl PullPlan {
    /// Whether a plan read back from saved settings names a commit and safe
    /// paths (the repo id was checked when it was read).
    pub fn is_well_formed(&self) -> bool {
        super::cache::is_commit(&self.revision)
            && self.files.iter().all(|f| super::cache::check_repo_path(&f.path).is_ok())
    }

    /// Bytes of all files, where the Hub said.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }
}

/// Where a pull stands (after each chunk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// The file being fetched.
    pub file: String,
    /// Bytes done over all files (files found in the cache count as done).
    pub done: u64,
    pub total: u64,
}

/// Reads the repo description and chooses the files: `requested` if given
/// (each must exist), else [`default_selection`].
pub fn plan(hub: &Hub, repo: &RepoId, revision: &str, requested: &[String]) -> Result<PullPlan, HubError> {
    let info = hub.repo_info(repo, revision)?;
    let chosen: Vec<String> = if requested.is_empty() { default_selection(&info.files) } else { requested.to_vec() };
    let mut files = Vec::with_capacity(chosen.len());
    for path in chosen {
        let file = info
            .files
            .iter()
            .find(|f| f.path == path)
            .ok_or_else(|| HubError::EntryNotFound { repo: repo.to_string(), path: path.clone() })?;
        files.push(file.clone());
    }
    // The commit the description resolved to: every file comes from that one snapshot.
    Ok(PullPlan { repo: repo.clone(), revision: info.commit, files, license: info.license })
}

/// Fetches every file of `plan` and records `branch` (the revision the
/// user named) as pointing at its commit; stops at the first pause, cancel
/// or error. `Done` holds the snapshot folder.
pub fn pull(
    hub: &Hub,
    plan: &PullPlan,
    branch: &str,
    progress: &mut dyn FnMut(&PullProgress) -> Flow,
) -> Result<Outcome, HubError> {
    let total = plan.total_bytes();
    let mut before = 0;
    for file in &plan.files {
        let request = FileRequest {
            repo: &plan.repo,
            revision: &plan.revision,
            path: &file.path,
            sha256: file.sha256.as_deref(),
        };
        let mut report =
            |done: u64, _: Option<u64>| progress(&PullProgress { file: file.path.clone(), done: before + done, total });
        match fetch_file(hub, &request, &mut report)? {
            Outcome::Done(_) => {}
            other => return Ok(other),
        }
        before += file.size.unwrap_or(0);
        if progress(&PullProgress { file: file.path.clone(), done: before, total }) == Flow::Cancel {
            return Ok(Outcome::Cancelled);
        }
    }
    // The branch now names this commit, so the snapshot is found by `main` too.
    let cache = super::cache::RepoCache::new(&hub.config().cache_dir, &plan.repo);
    cache.write_ref(branch, &plan.revision).map_err(|e| HubError::file(cache.root(), &e))?;
    Ok(Outcome::Done(cache.root().join("snapshots").join(&plan.revision)))
}
