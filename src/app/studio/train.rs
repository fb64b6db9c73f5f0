//! The studio's training side: turning the Train view's settings into a run
//! of any family, pausing and resuming it (the paused run is kept in the
//! settings, so it survives a restart), turning the training thread's
//! events into its curves and samples, and listing the finished model in
//! the pickers.

use std::path::PathBuf;

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::diffusion::stages::{AUTOENCODER_CHANNELS, DiffusionSettings, DiffusionStart};
use crate::gan::network::GanConfig;
use crate::gan::train::TrainGanSpec;
use crate::io::export::make_grid;
use crate::io::image_folder::{FolderSpec, load_folder};
use crate::io::manifest::{Family, ModelManifest, discover};
use crate::io::text_corpus::{CorpusName, TextSource};
use crate::text::gpt::GptConfig;
use crate::text::train::TrainTextSpec;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::ui::status::Notice;
use crate::ui::train_panel::{BaseModel, FolderPreview, FolderSummary, TrainFamily};
use crate::vae::denoise::to_rgb;
use crate::vae::network::VaeConfig;
use crate::vae::train::TrainVaeSpec;
use crate::worker::train_plan::{DiffusionPlan, RunFolder, TrainPlan, TrainRequest};
use crate::worker::{WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies a training-view command; returns it back if it is not one.
    pub(super) fn apply_train_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::StartTraining => match self.train_plan() {
                Ok(plan) => {
                    let request = TrainRequest {
                        plan,
                        data_dir: PathBuf::from(&self.train.data_dir),
                        folder: RunFolder::Fresh(self.models_dir.clone()),
                        limit: (self.train.limit > 0).then_some(self.train.limit),
                        until: None,
                    };
                    self.start_run(request);
                }
                Err(e) => self.notices.push(Notice { text: format!("cannot train: {e}"), error: true }),
            },
            UiCommand::PauseTraining => {
                if let Some(job) = self.train.running {
                    self.train.pausing = true;
                    self.worker.cancel(job);
                }
            }
            UiCommand::ResumeTraining | UiCommand::FinishTraining => {
                if let Some(mut request) = self.train.paused.take() {
                    request.until = matches!(command, UiCommand::FinishTraining).then_some(0);
                    self.start_run(request);
                }
            }
            UiCommand::ForgetPausedTraining => self.train.paused = None,
            UiCommand::ChooseTrainingText => self.dialogs.open(|| {
                let file = rfd::FileDialog::new().set_title("Your text").add_filter("text", &["txt"]).pick_file()?;
                Some(DialogOutcome::TrainingText(file))
            }),
            UiCommand::ChooseTrainingFolder(None) => self.dialogs.open(|| {
                let dir = rfd::FileDialog::new().set_title("A folder of your images").pick_folder()?;
                Some(DialogOutcome::TrainingFolder(dir))
            }),
            UiCommand::ChooseTrainingFolder(Some(dir)) => {
                self.train.use_folder = true;
                self.train.folder_spec.folder = dir;
                self.train.preview = None;
                self.apply(UiCommand::PreviewTrainingFolder);
            }
            UiCommand::PreviewTrainingFolder => {
                let spec = self.train.folder_spec.clone();
                self.train.preview_asked = Some(spec.clone());
                // Reading a folder decodes every image: a helper thread does it.
                self.dialogs.open(move || Some(DialogOutcome::FolderPreview(preview_folder(spec))));
            }
            UiCommand::WatchGanRun(None) => {
                let start = self.settings.output_dir.clone();
                self.dialogs.open(move || {
                    let folder = rfd::FileDialog::new().set_directory(start).pick_folder()?;
                    Some(DialogOutcome::WatchRun(folder))
                });
            }
            UiCommand::WatchGanRun(Some(folder)) => {
                let label = format!("watch {}", folder.display());
                let job = self.submit(WorkerRequest::WatchGanRun { folder }, Purpose::Train, label);
                self.train.begin(job);
                self.train_request = None;
            }
            other => return Some(other),
        }
        None
    }

    fn start_run(&mut self, request: TrainRequest) {
        let label = format!("train {}", request.plan.stem());
        let job = self.submit(WorkerRequest::Train(Box::new(request.clone())), Purpose::Train, label);
        self.train.begin(job);
        self.train_request = Some(request);
    }

    /// The run the Train view's settings describe.
    fn train_plan(&self) -> Result<TrainPlan, String> {
        let t = &self.train;
        let source = t.source();
        let (side, channels) = source.image_shape();
        let base = t.base.as_ref().and_then(|id| t.bases.iter().find(|b| &b.id == id)).map(|b| b.dir.clone());
        Ok(match t.family {
            TrainFamily::Vae => {
                let config =
                    VaeConfig { image_size: side, channels, latent_dim: t.latent_dim, hidden: 128, base_channels: 32 };
                let (epochs, seed, beta) = (t.epochs.max(1), t.seed, t.beta);
                TrainPlan::Vae(TrainVaeSpec { dataset: source, config, epochs, batch_size: 64, lr: 1e-3, beta, seed })
            }
            TrainFamily::Gan => {
                let mut spec = match base {
                    Some(dir) => {
                        TrainGanSpec::fine_tune(&dir, source, t.epochs.max(1), t.seed).map_err(|e| e.to_string())?
                    }
                    None => TrainGanSpec::dcgan(source, GanConfig::for_images(side, channels), t.epochs.max(1), t.seed),
                };
                // A small folder trains in batches of all its images (a batch needs at least two).
                if let Some(Ok(summary)) = t.preview.as_ref().filter(|_| t.use_folder).map(|p| &p.result) {
                    spec.batch_size = spec.batch_size.min(summary.train.max(2));
                }
                TrainPlan::Gan(spec)
            }
            TrainFamily::Diffusion => TrainPlan::Diffusion(DiffusionPlan {
                source,
                autoencoder_epochs: t.autoencoder_epochs.max(1),
                autoencoder_channels: AUTOENCODER_CHANNELS,
                start: match base {
                    Some(base) => DiffusionStart::FineTune { base },
                    None => DiffusionStart::New { merges: 1500, max_len: 24, width: t.diffusion_width },
                },
                settings: DiffusionSettings {
                    epochs: t.epochs.max(1),
                    batch_size: 64,
                    lr: 3e-4,
                    ema: None,
                    seed: t.seed,
                    sample_every: 1,
                },
            }),
            TrainFamily::Text => {
                let path = t.text_path.trim();
                let corpus = if path.is_empty() {
                    TextSource::Named(CorpusName::Shakespeare)
                } else {
                    TextSource::Files(PathBuf::from(path))
                };
                // The vocabulary is the text's alphabet, known once the worker reads it.
                let (context, layers) = (t.gpt_context.max(2), t.gpt_layers.max(1));
                let config = GptConfig { vocab: 0, context, layers, heads: 4, width: t.gpt_width.next_multiple_of(4) };
                TrainPlan::Text(TrainTextSpec {
                    corpus,
                    config,
                    steps: t.steps.max(1),
                    batch_size: 32,
                    lr: 2e-3,
                    eval_every: 100,
                    eval_windows: 128,
                    seed: t.seed,
                })
            }
        })
    }

    /// Applies a training dialog's answer; returns it back if it is not one.
    pub(super) fn apply_train_dialog(&mut self, ctx: &egui::Context, outcome: DialogOutcome) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::TrainingFolder(dir) => self.apply(UiCommand::ChooseTrainingFolder(Some(dir))),
            DialogOutcome::TrainingText(path) => self.train.text_path = path.display().to_string(),
            DialogOutcome::FolderPreview(preview) => self.train.set_preview(ctx, preview),
            DialogOutcome::ModelsFound(models) => self.use_models(models),
            other => return Some(other),
        }
        None
    }

    /// Applies a training event; returns it back if it is not one.
    pub(super) fn apply_train_event(&mut self, ctx: &egui::Context, event: WorkerEvent) -> Option<WorkerEvent> {
        let ours = |job| self.train.running == Some(job);
        match event {
            WorkerEvent::TrainStage { job, folder, stage, done, planned } if ours(job) => {
                // From now on the run can be resumed from its folder, also after a restart.
                if let Some(request) = &mut self.train_request {
                    request.folder = RunFolder::Resume(folder.clone());
                }
                self.train.run.stage_started(folder, stage, done, planned);
            }
            WorkerEvent::TrainBatch { job, tick } if ours(job) => self.train.run.push_batch(&tick),
            WorkerEvent::TrainEpoch { job, summary, grid, text } if ours(job) => {
                self.train.run.push_epoch(ctx, summary, grid.as_ref(), text)
            }
            WorkerEvent::TrainingDone { job, .. }
            | WorkerEvent::Failed { job, .. }
            | WorkerEvent::Cancelled { job }
                if ours(job) =>
            {
                self.train.running = None;
                let request = self.train_request.take().filter(|r| r.folder.known().is_some());
                let paused = self.train.pausing || matches!(event, WorkerEvent::Failed { .. });
                self.train.paused = match &event {
                    WorkerEvent::TrainingDone { .. } => {
                        self.rediscover_models();
                        None
                    }
                    // A failed run (a folder gone, a full disk) can go on once the cause is fixed.
                    _ if paused => request.map(|r| TrainRequest { until: None, ..r }),
                    _ => None,
                };
                self.train.pausing = false;
                return Some(event); // the status bar reports it too
            }
            WorkerEvent::TrainStage { .. } | WorkerEvent::TrainBatch { .. } | WorkerEvent::TrainEpoch { .. } => {}
            other => return Some(other),
        }
        None
    }

    /// The run to offer again after a restart: the running one or the paused one.
    pub(super) fn unfinished_training(&self) -> Option<TrainRequest> {
        let running = self.train.running.and(self.train_request.clone());
        running.or_else(|| self.train.paused.clone()).filter(|r| r.folder.known().is_some())
    }

    /// Lists the models folder again (off the UI thread): a model just
    /// trained joins the Latent, Image or Text pickers.
    fn rediscover_models(&mut self) {
        let dir = self.models_dir.clone();
        self.dialogs.open(move || Some(DialogOutcome::ModelsFound(discover(&dir).0)));
    }

    /// Uses a new listing of the models folder (the Hub's text models stay).
    fn use_models(&mut self, found: Vec<ModelManifest>) {
        self.models.retain(|m| m.config.get("repo").is_some());
        self.models.extend(found);
        self.models.sort_by(|a, b| a.id.cmp(&b.id));
        self.text_models = self.models.iter().filter(|m| m.family == Family::Text).cloned().collect();
        self.image_models = self.models.iter().filter(|m| m.family == Family::Diffusion).cloned().collect();
        self.train.bases = base_models(&self.models);
        self.apply(UiCommand::RescanLibrary);
    }
}

/// The finished GANs and diffusion models a run can start from.
pub(super) fn base_models(models: &[ModelManifest]) -> Vec<BaseModel> {
    let family = |f: Family| match f {
        Family::Gan => Some(TrainFamily::Gan),
        Family::Diffusion => Some(TrainFamily::Diffusion),
        _ => None,
    };
    models
        .iter()
        .filter(|m| m.config.get("repo").is_none())
        .filter_map(|m| {
            Some(BaseModel {
                id: m.id.clone(),
                dir: m.dir.clone(),
                family: family(m.family)?,
                side: m.image_size[0],
                channels: m.channels,
            })
        })
        .collect()
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
