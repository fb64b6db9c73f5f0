//! The Models view's state: the repo whose files are shown (with the ones
//! chosen), the download queue with each pull's progress and speed, and
//! what the hub cache holds. The worker's events update it
//! (`apply_*`); `models_view.rs` draws it.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::hub::catalogue::default_selection;
use crate::hub::installed::InstalledRepo;
use crate::hub::pull::PullPlan;
use crate::hub::repo_info::RepoInfo;
use crate::worker::downloads::{DownloadEnd, DownloadId};

/// Speed is averaged over this window.
const SPEED_WINDOW: Duration = Duration::from_secs(3);

/// A repo's files, as the Hub listed them, and the ones ticked.
#[derive(Clone, Debug)]
pub struct Listing {
    pub repo: String,
    pub revision: String,
    pub info: Result<RepoInfo, String>,
    pub chosen: BTreeSet<String>,
}

impl Listing {
    pub fn new(repo: String, revision: String, info: Result<RepoInfo, String>) -> Self {
        let chosen = info.as_ref().map(|i| default_selection(&i.files).into_iter().collect()).unwrap_or_default();
        Self { repo, revision, info, chosen }
    }

    /// What a download of the ticked files fetches.
    pub fn plan(&self) -> Option<PullPlan> {
        let info = self.info.as_ref().ok()?;
        let repo = crate::hub::cache::RepoId::parse(&self.repo).ok()?;
        let files = info.files.iter().filter(|f| self.chosen.contains(&f.path)).cloned().collect::<Vec<_>>();
        (!files.is_empty()).then(|| PullPlan {
            repo,
            revision: info.commit.clone(),
            files,
            license: info.license.clone(),
        })
    }
}

/// A pull not finished when the studio closed (kept in the settings; back
/// as a paused row on the next start).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PendingPull {
    pub plan: PullPlan,
    pub branch: String,
}

/// Where a queued pull stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RowState {
    Queued,
    Running,
    Ended(DownloadEnd),
}

/// One pull in the queue.
#[derive(Clone, Debug)]
pub struct DownloadRow {
    pub id: DownloadId,
    pub plan: PullPlan,
    /// The revision the user named.
    pub branch: String,
    pub file: String,
    pub done: u64,
    pub total: u64,
    pub state: RowState,
    samples: VecDeque<(Instant, u64)>,
}

impl DownloadRow {
    pub fn new(id: DownloadId, plan: PullPlan, branch: String) -> Self {
        let total = plan.total_bytes();
        Self {
            id,
            plan,
            branch,
            file: String::new(),
            done: 0,
            total,
            state: RowState::Queued,
            samples: VecDeque::new(),
        }
    }

    /// Bytes per second over the last few seconds (`None` before two reports).
    pub fn speed(&self) -> Option<f64> {
        let (first, last) = (self.samples.front()?, self.samples.back()?);
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        (seconds > 0.05).then(|| (last.1.saturating_sub(first.1)) as f64 / seconds)
    }

    /// Seconds left at the current speed.
    pub fn eta(&self) -> Option<f64> {
        let speed = self.speed().filter(|s| *s > 0.0)?;
        Some(self.total.saturating_sub(self.done) as f64 / speed)
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, RowState::Queued | RowState::Running)
    }

    fn progress(&mut self, file: String, done: u64, total: u64, now: Instant) {
        self.file = file;
        self.done = done;
        self.total = total;
        self.samples.push_back((now, done));
        while self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > SPEED_WINDOW) {
            self.samples.pop_front();
        }
    }
}

/// The Models view's state.
#[derive(Default)]
pub struct ModelsPanel {
    /// The "any repo id" field.
    pub repo_input: String,
    pub revision_input: String,
    /// The repo being described (a request is out).
    pub describing: Option<String>,
    pub listing: Option<Listing>,
    pub downloads: Vec<DownloadRow>,
    pub installed: Vec<InstalledRepo>,
    /// A repo whose Delete was clicked once (the second click deletes).
    pub confirm_delete: Option<String>,
    /// The token field (cleared once saved).
    pub token_input: String,
    /// The remote backends' add form.
    pub backends: super::backends_view::BackendsPanel,
}

impl ModelsPanel {
    /// The pulls to offer again after a restart: queued, running, paused or failed.
    pub fn unfinished(&self) -> Vec<PendingPull> {
        self.downloads
            .iter()
            .filter(|r| !matches!(r.state, RowState::Ended(DownloadEnd::Done(_) | DownloadEnd::Cancelled)))
            .map(|r| PendingPull { plan: r.plan.clone(), branch: r.branch.clone() })
            .collect()
    }

    /// Shows a pull from an earlier session as paused, with the bytes it already has.
    pub fn restore(&mut self, id: DownloadId, pending: PendingPull) {
        let mut row = DownloadRow::new(id, pending.plan, pending.branch);
        row.state = RowState::Ended(DownloadEnd::Paused);
        self.downloads.push(row);
    }

    pub fn revision(&self) -> String {
        let r = self.revision_input.trim();
        if r.is_empty() { "main".into() } else { r.to_owned() }
    }

    pub fn row_mut(&mut self, id: DownloadId) -> Option<&mut DownloadRow> {
        self.downloads.iter_mut().find(|r| r.id == id)
    }

    pub fn apply_described(&mut self, repo: String, revision: String, info: Result<RepoInfo, String>) {
        if self.describing.as_deref() == Some(repo.as_str()) {
            self.describing = None;
        }
        self.listing = Some(Listing::new(repo, revision, info));
    }

    pub fn apply_started(&mut self, id: DownloadId) {
        if let Some(row) = self.row_mut(id) {
            row.state = RowState::Running;
            row.samples.clear();
        }
    }

    pub fn apply_progress(&mut self, id: DownloadId, file: String, done: u64, total: u64) {
        if let Some(row) = self.row_mut(id) {
            row.progress(file, done, total, Instant::now());
        }
    }

    pub fn apply_finished(&mut self, id: DownloadId, end: DownloadEnd) {
        if let Some(row) = self.row_mut(id) {
            if matches!(end, DownloadEnd::Done(_)) {
                row.done = row.total;
            }
            row.state = RowState::Ended(end);
            row.samples.clear();
        }
    }

    /// Whether a download is queued or running (the view then repaints for its speed).
    pub fn busy(&self) -> bool {
        self.downloads.iter().any(DownloadRow::is_active) || self.describing.is_some()
    }

    /// The installed repo of this id, if any.
    pub fn installed(&self, repo: &str) -> Option<&InstalledRepo> {
        self.installed.iter().find(|r| r.repo.as_str() == repo)
    }
}

/// `1.5 GB`, `12.3 MB`, `900 kB`.
pub fn format_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// `1:05:09`, `4:12`, `0:07`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The snapshot folder a finished row points at.
pub fn done_folder(row: &DownloadRow) -> Option<&PathBuf> {
    match &row.state {
        RowState::Ended(DownloadEnd::Done(path)) => Some(path),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_eta_come_from_the_last_seconds() {
        let plan = PullPlan {
            repo: crate::hub::cache::RepoId::parse("a/b").unwrap(),
            revision: "0".repeat(40),
            files: vec![],
            license: None,
        };
        let mut row = DownloadRow::new(DownloadId(1), plan, "main".into());
        let t0 = Instant::now();
        row.progress("f".into(), 0, 10_000_000, t0);
        assert_eq!(row.speed(), None);
        row.progress("f".into(), 2_000_000, 10_000_000, t0 + Duration::from_secs(1));
        row.progress("f".into(), 4_000_000, 10_000_000, t0 + Duration::from_secs(2));
        assert_eq!(row.speed(), Some(2_000_000.0));
        assert_eq!(row.eta(), Some(3.0));
        assert_eq!(
            (format_bytes(1_500_000_000), format_bytes(12_340_000), format_bytes(999)),
            ("1.50 GB".into(), "12.3 MB".into(), "999 B".into())
        );
        assert_eq!(
            (format_duration(7.0), format_duration(252.0), format_duration(3909.0)),
            ("0:07".into(), "4:12".into(), "1:05:09".into())
        );
    }
}
