//! The Models view's commands and its worker's events: describing repos,
//! queueing, pausing, resuming and cancelling pulls, opening and deleting
//! installed repos, and refreshing the Image and Text pickers when a pull
//! finishes.

use std::path::{Path, PathBuf};

use super::StudioApp;
use crate::hub::cache::RepoId;
use crate::hub::config::{HubConfig, save_token};
use crate::hub::installed::text_manifests;
use crate::io::manifest::{Family, ModelManifest};
use crate::ui::commands::UiCommand;
use crate::ui::models_panel::{DownloadRow, RowState};
use crate::ui::status::Notice;
use crate::worker::downloads::{DownloadEnd, DownloadEvent};

impl StudioApp {
    /// Applies a Models view command; returns it back if it is not one.
    pub(super) fn apply_models_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::DescribeRepo { repo, revision } => self.downloads.describe(&repo, &revision),
            UiCommand::Download { plan, branch } => {
                let id = self.downloads.enqueue(plan.clone(), &branch);
                self.models_panel.downloads.push(DownloadRow::new(id, plan, branch));
            }
            UiCommand::PauseDownload(id) => self.downloads.pause(id),
            UiCommand::CancelDownload(id) => {
                self.downloads.cancel(id);
                // A paused or failed pull is not on the thread: queue it so its partial files go.
                if let Some(row) = self.models_panel.row_mut(id)
                    && !row.is_active()
                {
                    row.state = RowState::Queued;
                    let (plan, branch) = (row.plan.clone(), row.branch.clone());
                    self.downloads.requeue_cancelled(id, plan, &branch);
                }
            }
            UiCommand::ResumeDownload(id) => {
                if let Some(row) = self.models_panel.row_mut(id) {
                    row.state = RowState::Queued;
                    let (plan, branch) = (row.plan.clone(), row.branch.clone());
                    self.downloads.requeue(id, plan, &branch);
                }
            }
            UiCommand::OpenFolder(path) => self.open_folder(&path),
            UiCommand::DeleteRepo(repo) => match RepoId::parse(&repo) {
                Ok(repo) => self.downloads.delete(repo),
                Err(e) => self.notices.push(Notice { text: e.to_string(), error: true }),
            },
            UiCommand::RefreshInstalled => self.downloads.refresh_installed(),
            UiCommand::SaveHubToken(token) => {
                let mut config = self.downloads.config().clone();
                match save_token(&config.home, &token) {
                    Ok(path) => {
                        self.notices
                            .push(Notice { text: format!("Hub token saved in {}", path.display()), error: false });
                        config.token = Some(token);
                        self.use_hub(config);
                    }
                    Err(e) => self.notices.push(Notice {
                        text: format!("cannot save the token in {}: {e}", config.home.display()),
                        error: true,
                    }),
                }
            }
            other => return Some(other),
        }
        None
    }

    /// Applies what the downloads worker reported since the last frame.
    pub(super) fn handle_download_events(&mut self) {
        for event in self.downloads.poll() {
            match event {
                DownloadEvent::Described { repo, revision, result } => {
                    self.models_panel.apply_described(repo, revision, result)
                }
                DownloadEvent::Started { id } => self.models_panel.apply_started(id),
                DownloadEvent::Progress { id, file, done, total } => {
                    self.models_panel.apply_progress(id, file, done, total)
                }
                DownloadEvent::Finished { id, end } => {
                    let repo = self.models_panel.row_mut(id).map(|r| r.plan.repo.to_string()).unwrap_or_default();
                    match &end {
                        DownloadEnd::Done(_) => {
                            self.notices.push(Notice { text: format!("downloaded {repo}"), error: false });
                        }
                        DownloadEnd::Failed(e) => {
                            self.notices.push(Notice { text: format!("download of {repo} stopped: {e}"), error: true })
                        }
                        DownloadEnd::Paused | DownloadEnd::Cancelled => {}
                    }
                    self.models_panel.apply_finished(id, end);
                }
                DownloadEvent::Installed(repos) => {
                    self.models_panel.installed = repos;
                    self.refresh_pickers();
                }
                DownloadEvent::Error(e) => self.notices.push(Notice { text: e, error: true }),
            }
        }
    }

    /// Talks to the Hub `config` describes from now on (tests point it at a stand-in).
    /// Pulls already queued keep the settings they were queued with.
    pub fn use_hub(&mut self, config: HubConfig) {
        self.downloads.set_config(config);
        self.downloads.refresh_installed();
    }

    /// Offers the pulls an earlier session left unfinished, paused: Resume
    /// continues from the bytes already in the cache.
    pub(super) fn restore_downloads(&mut self) {
        for pending in std::mem::take(&mut self.settings.unfinished_downloads) {
            if pending.plan.is_well_formed() {
                let id = self.downloads.new_id();
                self.models_panel.restore(id, pending);
            }
        }
    }

    /// The hub cache's snapshot folders: library folders for the Image view.
    pub(super) fn hub_snapshots(&self) -> Vec<PathBuf> {
        self.models_panel.installed.iter().filter_map(|r| r.snapshot.clone()).collect()
    }

    /// Lists models again when the cache changed: GGUF files join the Text
    /// view's picker, checkpoints, diffusers folders, LoRAs and preview
    /// decoders the Image view's library.
    /// No file is read here (the UI thread): the downloads worker listed the cache.
    fn refresh_pickers(&mut self) {
        // Text models from the hub cache carry their repo in their config; shipped ones do not.
        self.models.retain(|m: &ModelManifest| m.config.get("repo").is_none());
        self.models.extend(text_manifests(&self.models_panel.installed));
        self.text_models = self.models.iter().filter(|m| m.family == Family::Text).cloned().collect();
        self.apply(UiCommand::RescanLibrary);
    }

    fn open_folder(&mut self, path: &Path) {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        if let Err(e) = std::process::Command::new(opener).arg(path).spawn() {
            self.notices.push(Notice { text: format!("cannot open {}: {opener}: {e}", path.display()), error: true });
        }
    }
}
