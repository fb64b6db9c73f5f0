//! The Latent view's outliers and denoising: asking for a folder or an
//! image, sending the VAE jobs, showing their results if the model is
//! still the one shown, and exporting a ranking.

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::worker::{SaveTarget, WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies an outliers or denoising command; returns it back if it is not one.
    pub(super) fn apply_vae_tools_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::RankOutliers(None) => self.dialogs.open(|| {
                let dir = rfd::FileDialog::new().set_title("A folder of images to rank").pick_folder()?;
                Some(DialogOutcome::OutlierFolder(dir))
            }),
            UiCommand::RankOutliers(Some(folder)) => {
                // No model shown: the command is consumed with nothing to do.
                let model = self.model_id()?;
                let label = format!("rank {}", folder.display());
                let fit = self.panel.vae_tools.fit;
                let job = self.submit(WorkerRequest::Outliers { model, folder, fit }, Purpose::Analyse, label);
                self.panel.vae_tools.ranking_job = Some(job);
            }
            UiCommand::ExportOutliers => {
                let view = self.panel.vae_tools.ranking.as_ref()?;
                let contents = view.ranking.to_json();
                let start = self.settings.output_dir.clone();
                self.dialogs.open(move || {
                    let path = rfd::FileDialog::new()
                        .set_directory(start)
                        .set_file_name("outliers.json")
                        .add_filter("JSON", &["json"])
                        .save_file()?;
                    let request = Box::new(WorkerRequest::SaveText { contents, target: SaveTarget::Exact(path) });
                    Some(DialogOutcome::Save { request, label: "export the outlier ranking".into() })
                });
            }
            UiCommand::DenoiseImage(None) => self.dialogs.open(|| {
                let file = rfd::FileDialog::new()
                    .set_title("An image to denoise")
                    .add_filter("images", &["png", "jpg", "jpeg", "webp", "gif"])
                    .pick_file()?;
                Some(DialogOutcome::DenoiseImage(file))
            }),
            UiCommand::DenoiseImage(Some(path)) => {
                self.panel.vae_tools.image = Some(path);
                self.panel.vae_tools.denoised = None;
                self.apply(UiCommand::DenoiseAgain);
            }
            UiCommand::DenoiseAgain => {
                let tools = &self.panel.vae_tools;
                let (Some(model), Some(image)) = (self.model_id(), tools.image.clone()) else { return None };
                let (noise, seed) = (tools.noise, tools.seed);
                self.submit(WorkerRequest::Denoise { model, image, noise, seed }, Purpose::Analyse, "denoise");
            }
            other => return Some(other),
        }
        None
    }

    /// Applies a folder or image chosen for them; returns the answer back if it is not one.
    pub(super) fn apply_vae_tools_dialog(&mut self, outcome: DialogOutcome) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::OutlierFolder(dir) => self.apply(UiCommand::RankOutliers(Some(dir))),
            DialogOutcome::DenoiseImage(path) => self.apply(UiCommand::DenoiseImage(Some(path))),
            other => return Some(other),
        }
        None
    }

    /// Applies a ranking or a denoised image; returns the event back if it is not one.
    pub(super) fn apply_vae_tools_event(&mut self, ctx: &egui::Context, event: WorkerEvent) -> Option<WorkerEvent> {
        match event {
            WorkerEvent::OutliersRanked { job, ranking } => {
                if self.panel.vae_tools.ranking_job == Some(job) {
                    self.panel.vae_tools.ranking_job = None;
                }
                if self.is_current(job) {
                    self.panel.vae_tools.set_ranking(ctx, *ranking);
                }
            }
            WorkerEvent::Denoised { job, result } => {
                if self.is_current(job) {
                    self.panel.vae_tools.set_denoised(ctx, *result);
                }
            }
            WorkerEvent::Failed { job, .. } | WorkerEvent::Cancelled { job }
                if self.panel.vae_tools.ranking_job == Some(job) =>
            {
                self.panel.vae_tools.ranking_job = None;
                return Some(event); // the status bar reports it too
            }
            other => return Some(other),
        }
        None
    }
}
