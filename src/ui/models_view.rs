//! Draws the Models view: the catalogue and "any repo id", the chosen
//! repo's files (sizes, GGUF quantizations, the default ones ticked), the
//! download queue (progress, speed, ETA; pause, resume, cancel) and the
//! installed repos (size, licence, open folder, delete); above them, the
//! remote backends (`backends_view`).

use std::path::Path;

use egui::{ProgressBar, RichText};

use super::commands::UiCommand;
use super::models_panel::{ModelsPanel, RowState, done_folder, format_bytes, format_duration};
use crate::hub::catalogue::CATALOGUE;
use crate::hub::repo_info::Gated;
use crate::worker::downloads::DownloadEnd;

/// What the view shows besides its own state.
pub struct ModelsViewContext<'a> {
    pub endpoint: &'a str,
    pub cache_dir: &'a Path,
    pub offline: bool,
    /// Whether a token is in use (its value is never shown).
    pub has_token: bool,
    /// The remote backends and their state.
    pub backends: &'a [crate::spec::backend::BackendView],
}

impl ModelsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &ModelsViewContext<'_>, out: &mut Vec<UiCommand>) {
        self.backends.ui(ui, ctx.backends, out);
        ui.separator();
        ui.horizontal(|ui| {
            ui.label(format!("Hugging Face Hub: {}", ctx.endpoint));
            ui.label(RichText::new(format!("cache {}", ctx.cache_dir.display())).weak().small());
            if ctx.offline {
                ui.colored_label(ui.visuals().warn_fg_color, "offline (HF_HUB_OFFLINE): only the cache is used");
            }
        });
        self.token_ui(ui, ctx, out);
        ui.separator();
        ui.columns(2, |columns| {
            self.catalogue_ui(&mut columns[0], out);
            self.listing_ui(&mut columns[1], out);
        });
        ui.separator();
        self.downloads_ui(ui, out);
        ui.separator();
        self.installed_ui(ui, out);
    }

    /// A token for gated and private repos, kept where `hf auth login` keeps it.
    fn token_ui(&mut self, ui: &mut egui::Ui, ctx: &ModelsViewContext<'_>, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            let label = ui.label("Hub token");
            ui.add(egui::TextEdit::singleline(&mut self.token_input).password(true).desired_width(220.0))
                .labelled_by(label.id)
                .on_hover_text(
                    "For gated and private repos; saved owner-only in $HF_HOME/token, never shown or logged",
                );
            let token = crate::hub::config::Token::parse(&self.token_input);
            if ui.add_enabled(token.is_some(), egui::Button::new("Save token")).clicked()
                && let Some(token) = token
            {
                self.token_input.clear();
                out.push(UiCommand::SaveHubToken(token));
            }
            let state = if ctx.has_token { "a token is in use" } else { "no token (public repos only)" };
            ui.label(RichText::new(state).weak().small());
        });
    }

    fn catalogue_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Catalogue");
        egui::Grid::new("catalogue").striped(true).num_columns(3).show(ui, |ui| {
            for entry in CATALOGUE {
                ui.label(RichText::new(entry.title).strong()).on_hover_text(entry.repo);
                ui.label(RichText::new(format!("{} · {}", entry.kind.label(), entry.note)).small());
                ui.horizontal(|ui| {
                    if ui.button("Files").on_hover_text(format!("list the files of {}", entry.repo)).clicked() {
                        self.repo_input = entry.repo.to_owned();
                        self.describe(out);
                    }
                    if self.installed(entry.repo).is_some() {
                        ui.label(RichText::new("installed").small().color(ui.visuals().selection.bg_fill));
                    }
                });
                ui.end_row();
            }
        });
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let label = ui.label("Any repo id");
            let field = ui
                .add(egui::TextEdit::singleline(&mut self.repo_input).hint_text("owner/name").desired_width(220.0))
                .labelled_by(label.id);
            let label = ui.label("revision");
            ui.add(egui::TextEdit::singleline(&mut self.revision_input).hint_text("main").desired_width(70.0))
                .labelled_by(label.id);
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Show files").clicked() || enter {
                self.describe(out);
            }
        });
    }

    fn describe(&mut self, out: &mut Vec<UiCommand>) {
        let repo = self.repo_input.trim().to_owned();
        if repo.is_empty() {
            return;
        }
        self.describing = Some(repo.clone());
        out.push(UiCommand::DescribeRepo { repo, revision: self.revision() });
    }

    fn listing_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        if let Some(repo) = &self.describing {
            ui.horizontal(|ui| {
                super::busy::busy(ui);
                ui.label(format!("asking the Hub about {repo}…"));
            });
        }
        // The files of this repo already in the cache at the listed commit.
        let cached: Vec<String> = self
            .listing
            .as_ref()
            .and_then(|l| {
                let commit = l.info.as_ref().ok()?.commit.as_str();
                let repo = self.installed(&l.repo)?;
                repo.snapshot.as_ref().is_some_and(|s| s.ends_with(commit)).then(|| repo.files.clone())
            })
            .unwrap_or_default();
        let Some(listing) = &mut self.listing else {
            ui.label(RichText::new("Pick a catalogue entry or type a repo id to see its files.").weak());
            return;
        };
        ui.heading(&listing.repo);
        let info = match &listing.info {
            Ok(info) => info,
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
                return;
            }
        };
        ui.label(format!(
            "commit {} · licence {}{}",
            &info.commit[..12],
            info.license.as_deref().unwrap_or("not stated"),
            match info.gated {
                Gated::No => "",
                Gated::Auto | Gated::Manual => " · gated: ask for access on its page, then set HF_TOKEN",
            }
        ));
        egui::ScrollArea::vertical().id_salt("repo-files").max_height(260.0).show(ui, |ui| {
            egui::Grid::new("repo-files-grid").striped(true).num_columns(4).show(ui, |ui| {
                for file in &info.files {
                    let mut ticked = listing.chosen.contains(&file.path);
                    if ui.checkbox(&mut ticked, &file.path).changed() {
                        if ticked {
                            listing.chosen.insert(file.path.clone());
                        } else {
                            listing.chosen.remove(&file.path);
                        }
                    }
                    ui.label(file.size.map(format_bytes).unwrap_or_default());
                    ui.label(RichText::new(file.quant().unwrap_or_default()).monospace());
                    if cached.contains(&file.path) {
                        ui.label(RichText::new("in cache").small().weak());
                    } else {
                        ui.label("");
                    }
                    ui.end_row();
                }
            });
        });
        let plan = listing.plan();
        let label = match &plan {
            Some(plan) => format!("Download {} files ({})", plan.files.len(), format_bytes(plan.total_bytes())),
            None => "Download (tick some files)".to_owned(),
        };
        if ui.add_enabled(plan.is_some(), egui::Button::new(label)).clicked()
            && let Some(plan) = plan
        {
            out.push(UiCommand::Download { plan, branch: listing.revision.clone() });
        }
    }

    fn downloads_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Downloads");
        if self.downloads.is_empty() {
            ui.label(RichText::new("Nothing queued.").weak());
        }
        for row in self.downloads.iter().rev() {
            ui.horizontal(|ui| {
                ui.label(RichText::new(row.plan.repo.as_str()).strong());
                let fraction = if row.total > 0 { row.done as f32 / row.total as f32 } else { 0.0 };
                let mut text = format!("{} / {}", format_bytes(row.done), format_bytes(row.total));
                if let Some(speed) = row.speed() {
                    text.push_str(&format!(" · {}/s", format_bytes(speed as u64)));
                }
                if let Some(eta) = row.eta() {
                    text.push_str(&format!(" · {} left", format_duration(eta)));
                }
                ui.add(ProgressBar::new(fraction).text(text).desired_width(360.0));
                match &row.state {
                    RowState::Queued | RowState::Running => {
                        let what = if row.state == RowState::Queued { "queued" } else { row.file.as_str() };
                        ui.label(RichText::new(what).small());
                        if ui.button("Pause").clicked() {
                            out.push(UiCommand::PauseDownload(row.id));
                        }
                        if ui.button("Cancel").clicked() {
                            out.push(UiCommand::CancelDownload(row.id));
                        }
                    }
                    RowState::Ended(DownloadEnd::Paused | DownloadEnd::Failed(_)) => {
                        if let RowState::Ended(DownloadEnd::Failed(e)) = &row.state {
                            ui.colored_label(ui.visuals().error_fg_color, e);
                        } else {
                            ui.label("paused");
                        }
                        if ui.button("Resume").clicked() {
                            out.push(UiCommand::ResumeDownload(row.id));
                        }
                        if ui.button("Cancel").clicked() {
                            out.push(UiCommand::CancelDownload(row.id));
                        }
                    }
                    RowState::Ended(DownloadEnd::Cancelled) => {
                        ui.label("cancelled");
                    }
                    RowState::Ended(DownloadEnd::Done(_)) => {
                        ui.label("done");
                        if let Some(folder) = done_folder(row)
                            && ui.button("Open folder").clicked()
                        {
                            out.push(UiCommand::OpenFolder(folder.clone()));
                        }
                    }
                }
            });
        }
    }

    fn installed_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.heading("Installed");
            if ui.small_button("Refresh").clicked() {
                out.push(UiCommand::RefreshInstalled);
            }
        });
        if self.installed.is_empty() {
            ui.label(RichText::new("The hub cache holds no models yet.").weak());
            return;
        }
        egui::Grid::new("installed-grid").striped(true).num_columns(4).show(ui, |ui| {
            for repo in &self.installed {
                let name = repo.repo.as_str();
                ui.label(RichText::new(name).strong());
                let mut size = format_bytes(repo.size);
                if repo.partial > 0 {
                    size.push_str(&format!(" (+{} partial)", format_bytes(repo.partial)));
                }
                ui.label(size);
                ui.label(repo.license.as_deref().unwrap_or("licence not stated"));
                ui.horizontal(|ui| {
                    if ui.button("Open folder").clicked() {
                        out.push(UiCommand::OpenFolder(repo.snapshot.clone().unwrap_or_else(|| repo.root.clone())));
                    }
                    let confirming = self.confirm_delete.as_deref() == Some(name);
                    let label = if confirming { "Really delete?" } else { "Delete" };
                    if ui.button(label).clicked() {
                        if confirming {
                            self.confirm_delete = None;
                            out.push(UiCommand::DeleteRepo(name.to_owned()));
                        } else {
                            self.confirm_delete = Some(name.to_owned());
                        }
                    }
                });
                ui.end_row();
            }
        });
    }
}
