//! The studio's training side: starting a GAN run from the training view and
//! turning the training thread's events into its curves and sample grid.

use std::path::PathBuf;

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::gan::network::GanConfig;
use crate::gan::train::TrainGanSpec;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::worker::{WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies a training-view command; returns it back if it is not one.
    pub(super) fn apply_train_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::StartGanTraining => {}
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
        let (side, channels) = t.dataset.image_shape();
        let config = GanConfig::for_images(side, channels);
        let spec = TrainGanSpec::dcgan(t.dataset, config, t.epochs.max(1), t.seed);
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
