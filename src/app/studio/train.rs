//! The studio's training side: starting a GAN run from the training view and
//! turning the training thread's events into its curves and sample grid.

use std::path::PathBuf;

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::gan::network::GanConfig;
use crate::gan::train::TrainGanSpec;
use crate::io::export::make_grid;
use crate::io::image_folder::{FolderSpec, load_folder};
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::ui::train_panel::{FolderPreview, FolderSummary};
use crate::vae::denoise::to_rgb;
use crate::worker::{WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies a training-view command; returns it back if it is not one.
    pub(super) fn apply_train_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::StartGanTraining => {}
            UiCommand::ChooseTrainingFolder(None) => {
                self.dialogs.open(|| {
                    let dir = rfd::FileDialog::new().set_title("A folder of your images").pick_folder()?;
                    Some(DialogOutcome::TrainingFolder(dir))
                });
                return None;
            }
            UiCommand::ChooseTrainingFolder(Some(dir)) => {
                self.train.use_folder = true;
                self.train.folder_spec.folder = dir;
                self.train.preview = None;
                self.apply(UiCommand::PreviewTrainingFolder);
                return None;
            }
            UiCommand::PreviewTrainingFolder => {
                let spec = self.train.folder_spec.clone();
                self.train.preview_asked = Some(spec.clone());
                // Reading a folder decodes every image: a helper thread does it.
                self.dialogs.open(move || Some(DialogOutcome::FolderPreview(preview_folder(spec))));
                return None;
            }
            UiCommand::WatchGanRun(None) => {
                let start = self.settings.output_dir.clone();
                self.dialogs.open(move || {
                    let folder = rfd::FileDialog::new().set_directory(start).pick_folder()?;
                    Some(DialogOutcome::WatchRun(folder))
                });
                return None;
            }
            UiCommand::WatchGanRun(Some(folder)) => {
                let label = format!("watch {}", folder.display());
                let job = self.submit(WorkerRequest::WatchGanRun { folder }, Purpose::Train, label);
                self.train.begin(job);
                return None;
            }
            other => return Some(other),
        }
        let t = &self.train;
        let source = t.source();
        let (side, channels) = source.image_shape();
        let config = GanConfig::for_images(side, channels);
        let mut spec = TrainGanSpec::dcgan(source, config, t.epochs.max(1), t.seed);
        // A small folder trains in batches of all its images (a batch needs at least two).
        if let Some(Ok(summary)) = t.preview.as_ref().filter(|_| t.use_folder).map(|p| &p.result) {
            spec.batch_size = spec.batch_size.min(summary.train.max(2));
        }
        let request = WorkerRequest::TrainGan {
            spec,
            data_dir: PathBuf::from(&t.data_dir),
            runs_dir: self.settings.output_dir.clone(),
            limit: (t.limit > 0).then_some(t.limit),
        };
        let job = self.submit(request, Purpose::Train, "train GAN");
        self.train.begin(job);
        None
    }

    /// Applies a training dialog's answer; returns it back if it is not one.
    pub(super) fn apply_train_dialog(&mut self, ctx: &egui::Context, outcome: DialogOutcome) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::TrainingFolder(dir) => self.apply(UiCommand::ChooseTrainingFolder(Some(dir))),
            DialogOutcome::FolderPreview(preview) => self.train.set_preview(ctx, preview),
            other => return Some(other),
        }
        None
    }

    /// Applies a training event; returns it back if it is not one.
    pub(super) fn apply_train_event(&mut self, ctx: &egui::Context, event: WorkerEvent) -> Option<WorkerEvent> {
        let ours = |job| self.train.running == Some(job);
        match event {
            WorkerEvent::GanStarted { job, folder } if ours(job) => self.train.folder = Some(folder),
            WorkerEvent::GanBatch { job, epoch, batch, batches, d_loss, g_loss } if ours(job) => {
                self.train.push_batch(epoch, batch, batches, d_loss, g_loss)
            }
            WorkerEvent::GanEpoch { job, report, grid } if ours(job) => self.train.push_epoch(ctx, report, &grid),
            WorkerEvent::TrainingDone { job, .. }
            | WorkerEvent::Failed { job, .. }
            | WorkerEvent::Cancelled { job }
                if ours(job) =>
            {
                self.train.running = None;
                return Some(event); // the status bar reports it too
            }
            WorkerEvent::GanStarted { .. } | WorkerEvent::GanBatch { .. } | WorkerEvent::GanEpoch { .. } => {}
            other => return Some(other),
        }
        None
    }
}

/// Reads the folder as a run would, and summarises it for the Train view.
fn preview_folder(spec: FolderSpec) -> FolderPreview {
    let result = load_folder(&spec).map_err(|e| e.to_string()).map(|data| {
        let shown: Vec<image::RgbImage> =
            (0..data.train.len().min(64)).map(|i| to_rgb(data.train.image(i), spec.channels, spec.side)).collect();
        FolderSummary {
            grid: make_grid(&shown, 8, 1),
            train: data.train.len(),
            held_out: data.test.len(),
            classes: data.classes,
            skipped: data.skipped,
        }
    });
    FolderPreview { spec, result }
}
