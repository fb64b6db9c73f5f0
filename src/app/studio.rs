//! The studio application: owns the worker handle, the job table and the
//! panels; turns panel commands into worker requests and worker events into
//! panel state.

use std::path::PathBuf;

use eframe::egui_wgpu::RenderState;

mod backends;
mod chat;
mod frame;
mod history;
mod image;
mod library;
mod models;
mod pad;
mod save;
mod text;
mod train;
mod vae_tools;

use super::dialogs::{DialogOutcome, Dialogs};
use super::settings::Settings;
use crate::hub::config::HubConfig;
use crate::io::manifest::{ModelManifest, discover};
use crate::ui::commands::{Slot, UiCommand};
use crate::ui::history_panel::HistoryPanel;
use crate::ui::image_panel::ImagePanel;
use crate::ui::jobs::{JobTable, Purpose};
use crate::ui::latent_panel::{Endpoint, LatentPanel, Origin};
use crate::ui::models_panel::ModelsPanel;
use crate::ui::pad_panel::PadPanel;
use crate::ui::scatter;
use crate::ui::status::{DeviceInfo, Notice};
use crate::ui::text_panel::TextPanel;
use crate::ui::train_panel::TrainPanel;
use crate::worker::downloads::Downloads;
use crate::worker::{JobId, WorkerEvent, WorkerHandle, WorkerRequest};

/// How long one frame may spend applying worker events before drawing.
const EVENT_BUDGET: std::time::Duration = std::time::Duration::from_millis(4);

/// How soon a worker event is drawn. Not zero: a zero delay makes egui draw
/// two frames for one event.
const WORKER_WAKE_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

/// Least time between two repaints for streamed text when a software
/// renderer draws the window (the worker's default is a quarter second).
const SOFTWARE_RENDERER_STREAM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The whole application state.
pub struct StudioApp {
    worker: WorkerHandle,
    /// Where the remote backends' API keys are kept (owner-only).
    key_store: Option<crate::remote::keys::KeyStore>,
    /// The remote backends' state, read once per frame.
    backend_views: Vec<crate::spec::backend::BackendView>,
    models: Vec<ModelManifest>,
    /// The language models among `models` (the text panel's picker).
    text_models: Vec<ModelManifest>,
    /// Persisted settings.
    pub settings: Settings,
    jobs: JobTable,
    /// The latent panel.
    pub panel: LatentPanel,
    /// The text panel.
    pub text: TextPanel,
    /// The training view.
    pub train: TrainPanel,
    /// The image (diffusion) panel.
    pub image: ImagePanel,
    /// The Latent view's diffusion side: the latent pad.
    pub pad: PadPanel,
    /// The Latent view shows the pad (a diffusion model) instead of a VAE's or GAN's latent.
    pub explore_diffusion: bool,
    /// The History view.
    pub history: HistoryPanel,
    /// The file last moved to the trash from the History, for Undo.
    trashed: Option<crate::history::trash::Trashed>,
    /// The diffusion models among `models` (the image panel's picker).
    image_models: Vec<ModelManifest>,
    notices: Vec<Notice>,
    /// Where models run, for the status bar.
    device: DeviceInfo,
    about_open: bool,
    gpu_scatter: bool,
    selected: Option<String>,
    /// Events polled but not yet applied (the per-frame budget ran out).
    backlog: std::collections::VecDeque<WorkerEvent>,
    dialogs: Dialogs,
    /// What the model folders hold (listed off the UI thread).
    pub library: Vec<crate::diffusion::model_library::LibraryItem>,
    /// The Models view.
    pub models_panel: ModelsPanel,
    /// The Hub downloads worker.
    downloads: Downloads,
    /// Where models are found, and where the Train view's runs go (so a finished one is a model).
    models_dir: PathBuf,
    /// The training run in progress, as it can be resumed.
    train_request: Option<crate::worker::train_plan::TrainRequest>,
}

impl StudioApp {
    /// Builds the app from eframe's creation context: restores settings,
    /// starts the worker, installs the GPU scatter and opens the last model.
    pub fn new(cc: &eframe::CreationContext<'_>, models_dir: PathBuf) -> anyhow::Result<Self> {
        // The window exists now, and with it a software renderer's threads if there is no GPU.
        let software_renderer = crate::app::renderer_priority::lower_software_renderer_priority() > 0;
        let mut settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, Settings::KEY)).unwrap_or_default();
        // Folders named at launch join the library (as A1111's --ckpt-dir and --lora-dir do).
        if let Some(dirs) = std::env::var_os("LATENT_STUDIO_MODEL_FOLDERS") {
            for dir in std::env::split_paths(&dirs) {
                if !settings.model_folders.contains(&dir) {
                    settings.model_folders.push(dir);
                }
            }
        }
        let app = Self::with_settings(&cc.egui_ctx, cc.wgpu_render_state.as_ref(), models_dir, settings)?;
        if software_renderer {
            // Each frame of this window costs a software renderer 200–260 ms of CPU on
            // the models' cores: streamed text repaints at 2 frames a second, not 4.
            app.worker.set_stream_wake_interval(SOFTWARE_RENDERER_STREAM_INTERVAL);
        }
        Ok(app)
    }

    /// Builds the app without eframe (tests, benchmarks).
    pub fn with_settings(
        ctx: &egui::Context,
        render_state: Option<&RenderState>,
        models_dir: PathBuf,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        if let Some(rs) = render_state {
            scatter::install(rs);
        }
        let repaint = ctx.clone();
        // One frame per wake-up: egui answers a plain `request_repaint` with two
        // frames (to let layouts settle), which under a software renderer
        // doubled the CPU that streamed text took from the model.
        let wake = move || repaint.request_repaint_after(WORKER_WAKE_DELAY);
        let worker = WorkerHandle::spawn(models_dir.clone(), std::sync::Arc::new(wake))?;
        let downloads = Downloads::spawn(HubConfig::from_env(), waker(ctx))?;
        downloads.refresh_installed();
        // The hub cache's text models join with the downloads worker's first listing (off this thread).
        let (models, failed) = discover(&models_dir);
        let notices = failed.iter().map(|e| Notice { text: format!("skipped model: {e}"), error: true }).collect();
        let mut settings = settings;
        // Stored settings may come from an older or hand-edited file.
        settings.save_scale = settings.save_scale.clamp(1, 64);
        settings.frames = settings.frames.clamp(2, 32);
        let panel = LatentPanel::new(settings.method, settings.frames);
        let text_models: Vec<ModelManifest> =
            models.iter().filter(|m| m.family == crate::io::manifest::Family::Text).cloned().collect();
        let mut text = TextPanel::default();
        text.model = settings
            .text_model
            .clone()
            .or_else(|| text_models.first().map(|m| m.id.clone()))
            .map(crate::worker::TextModelRef::Id);
        text.sampling = settings.sampling.clone();
        text.max_tokens = settings.max_tokens.clamp(1, 2048);
        text.kv_cache = settings.kv_cache;
        // A model listed without a chat template turns chat off; a Hub model not listed yet keeps the setting.
        let without_chat = |id: &str| text_models.iter().any(|m| m.id == id && !m.has_chat_template());
        text.chat = match &text.model {
            Some(crate::worker::TextModelRef::Id(id)) if without_chat(id) => false,
            _ => settings.chat,
        };
        let image_models: Vec<ModelManifest> =
            models.iter().filter(|m| m.family == crate::io::manifest::Family::Diffusion).cloned().collect();
        let mut image = ImagePanel::default();
        if let Some(m) = image_models.first() {
            image.model = Some(crate::worker::ImageModelRef::Id(m.id.clone()));
            if m.image_size[0] > 0 {
                [image.width, image.height] = m.image_size;
            }
        }
        let mut pad = PadPanel::default();
        pad.model = image.model.clone();
        let mut app = Self {
            worker,
            key_store: crate::remote::keys::KeyStore::default_location(),
            backend_views: Vec::new(),
            image,
            pad,
            explore_diffusion: false,
            history: HistoryPanel::default(),
            trashed: None,
            image_models,
            models,
            text_models,
            settings,
            jobs: JobTable::default(),
            panel,
            text,
            train: TrainPanel::default(),
            notices,
            device: device_info(),
            about_open: false,
            gpu_scatter: scatter::is_installed(render_state),
            selected: None,
            backlog: std::collections::VecDeque::new(),
            dialogs: Dialogs::new(ctx.clone()),
            library: Vec::new(),
            models_panel: ModelsPanel::default(),
            downloads,
            models_dir,
            train_request: None,
        };
        app.train.bases = train::base_models(&app.models);
        app.train.paused = app.settings.unfinished_training.take();
        if !app.settings.model_folders.is_empty() {
            app.apply(UiCommand::RescanLibrary);
        }
        app.restore_downloads();
        app.use_backends();
        app.restore_conversation();
        if app.settings.tab == crate::ui::commands::Tab::History {
            app.apply(UiCommand::RefreshHistory);
        }
        if let Some(spec) = app.settings.training_folder.clone() {
            // The Train view reads it again when it is first shown.
            app.train.use_folder = true;
            app.train.folder_spec = spec;
        }
        let latent = |m: &&ModelManifest| m.family.has_latent();
        let first = app.settings.last_model.clone().filter(|id| app.models.iter().filter(latent).any(|m| &m.id == id));
        if let Some(id) = first.or_else(|| app.models.iter().find(latent).map(|m| m.id.clone())) {
            app.apply(UiCommand::SelectModel(id));
        }
        Ok(app)
    }

    /// The diffusion models the Image view's picker lists.
    pub fn image_models(&self) -> &[ModelManifest] {
        &self.image_models
    }

    /// Installed models.
    pub fn models(&self) -> &[ModelManifest] {
        &self.models
    }

    /// Messages shown in the status bar, oldest first.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The job table.
    pub fn jobs(&self) -> &JobTable {
        &self.jobs
    }

    /// Submits a request and records it in the job table.
    pub fn submit(&mut self, request: WorkerRequest, purpose: Purpose, label: impl Into<String>) -> JobId {
        let model = request.model().map(str::to_owned);
        let job = self.worker.submit(request);
        self.jobs.add(job, purpose, label, model);
        job
    }

    fn model_id(&self) -> Option<String> {
        self.panel.model.as_ref().map(|m| m.manifest.id.clone())
    }

    /// Applies one command from a panel.
    pub fn apply(&mut self, command: UiCommand) {
        let Some(command) = self.apply_text_command(command) else { return };
        let Some(command) = self.apply_train_command(command) else { return };
        let Some(command) = self.apply_image_command(command) else { return };
        let Some(command) = self.apply_pad_command(command) else { return };
        let Some(command) = self.apply_history_command(command) else { return };
        let Some(command) = self.apply_models_command(command) else { return };
        let Some(command) = self.apply_backend_command(command) else { return };
        let Some(command) = self.apply_vae_tools_command(command) else { return };
        match command {
            UiCommand::SelectModel(id) => {
                self.selected = Some(id.clone());
                self.settings.last_model = Some(id.clone());
                self.submit(
                    WorkerRequest::LoadModel { model: id.clone() },
                    Purpose::LoadModel,
                    format!("loading {id}"),
                );
            }
            UiCommand::DecodeCurrent => {
                let Some(model) = self.model_id() else { return };
                let request = WorkerRequest::Decode {
                    model,
                    latents: vec![self.panel.current_latent()],
                    preview: Some("current".into()),
                };
                self.submit(request, Purpose::Preview, "decode");
            }
            UiCommand::DecodeStrip => {
                let Some(model) = self.model_id() else { return };
                let latents = self.panel.path_latents();
                let request = WorkerRequest::Decode { model, latents, preview: Some("strip".into()) };
                self.submit(request, Purpose::Strip, "interpolate");
            }
            UiCommand::DecodeGrid => {
                let Some(model) = self.model_id() else { return };
                let latents = self.panel.grid_latents();
                let request = WorkerRequest::Decode { model, latents, preview: Some("grid".into()) };
                self.submit(request, Purpose::Grid, "sample grid");
            }
            UiCommand::EncodeFile { path, slot } => {
                let Some(model) = self.model_id() else { return };
                let label = format!("encode {}", path.display());
                self.submit(WorkerRequest::Encode { model, image: path }, Purpose::Encode(slot), label);
            }
            UiCommand::PickImage(slot) => self.dialogs.open(move || {
                let path =
                    rfd::FileDialog::new().add_filter("Images", &["png", "jpg", "jpeg", "gif", "bmp"]).pick_file()?;
                Some(DialogOutcome::Encode { path, slot })
            }),
            UiCommand::Save { kind, dialog } => self.save(kind, dialog),
            UiCommand::ChooseOutputDir => {
                let start = self.settings.output_dir.clone();
                self.dialogs.open(move || {
                    let dir = rfd::FileDialog::new().set_directory(start).pick_folder()?;
                    Some(DialogOutcome::OutputDir(dir))
                });
            }
            UiCommand::Cancel(job) => self.worker.cancel(job),
            UiCommand::ShowAbout => self.about_open = true,
            UiCommand::ShowTab(tab) => {
                self.settings.tab = tab;
                if tab == crate::ui::commands::Tab::History {
                    self.apply(UiCommand::RefreshHistory);
                }
            }
            UiCommand::ExploreDiffusion(on) => self.explore_diffusion = on,
            // Handled by `apply_text_command` and `apply_train_command`.
            UiCommand::Chat(_)
            | UiCommand::SelectTextModel(_)
            | UiCommand::OpenTextModel
            | UiCommand::Generate
            | UiCommand::SaveText
            | UiCommand::StartTraining
            | UiCommand::PauseTraining
            | UiCommand::ResumeTraining
            | UiCommand::FinishTraining
            | UiCommand::ForgetPausedTraining
            | UiCommand::ChooseTrainingText
            | UiCommand::WatchGanRun(_) => {}
            // Handled by `apply_pad_command`.
            UiCommand::SelectPadModel(_)
            | UiCommand::RenderPad { .. }
            | UiCommand::RestorePad(_)
            | UiCommand::MakeTravel => {}
            // Handled by `apply_history_command`.
            UiCommand::RefreshHistory
            | UiCommand::LoadThumbnails(_)
            | UiCommand::SelectHistory(_)
            | UiCommand::ReuseHistory(_)
            | UiCommand::OpenHistoryInPad(_)
            | UiCommand::TrashHistory(_)
            | UiCommand::UndoTrash => {}
            // Handled by `apply_vae_tools_command`.
            UiCommand::RankOutliers(_)
            | UiCommand::ExportOutliers
            | UiCommand::DenoiseImage(_)
            | UiCommand::DenoiseAgain => {}
            // Handled by `apply_image_command`.
            UiCommand::SelectImageModel(_)
            | UiCommand::OpenImageModel
            | UiCommand::OpenImageCheckpoint
            | UiCommand::OpenImageSettings
            | UiCommand::RestoreImageSettings(_)
            | UiCommand::PickInitImage
            | UiCommand::ClearInitImage
            | UiCommand::GenerateImages
            | UiCommand::WalkSeeds
            | UiCommand::AddModelFolder(_)
            | UiCommand::RemoveModelFolder(_)
            | UiCommand::RescanLibrary
            | UiCommand::DescribeRepo { .. }
            | UiCommand::Download { .. }
            | UiCommand::PauseDownload(_)
            | UiCommand::ResumeDownload(_)
            | UiCommand::CancelDownload(_)
            | UiCommand::OpenFolder(_)
            | UiCommand::DeleteRepo(_)
            | UiCommand::RefreshInstalled
            | UiCommand::SaveHubToken(_)
            // Handled by `apply_backend_command`.
            | UiCommand::AddBackend { .. }
            | UiCommand::RemoveBackend(_)
            | UiCommand::ChooseTrainingFolder(_)
            | UiCommand::PreviewTrainingFolder => {}
        }
    }

    /// Applies worker events for at most [`EVENT_BUDGET`].
    /// Events left over when the budget runs out wait in a backlog for the
    /// next frame; none is dropped.
    pub fn handle_events(&mut self, ctx: &egui::Context) {
        for outcome in self.dialogs.poll() {
            let Some(outcome) = self.apply_image_dialog(outcome) else { continue };
            let Some(outcome) = self.apply_pad_dialog(outcome) else { continue };
            let Some(outcome) = self.apply_history_dialog(ctx, outcome) else { continue };
            let Some(outcome) = self.apply_train_dialog(ctx, outcome) else { continue };
            let Some(outcome) = self.apply_vae_tools_dialog(outcome) else { continue };
            match outcome {
                DialogOutcome::Encode { path, slot } => self.apply(UiCommand::EncodeFile { path, slot }),
                DialogOutcome::Save { request, label } => {
                    self.submit(*request, Purpose::Save, label);
                }
                DialogOutcome::OutputDir(dir) => self.settings.output_dir = dir,
                DialogOutcome::TextModel(path) => {
                    self.apply(UiCommand::SelectTextModel(crate::worker::TextModelRef::File(path)))
                }
                DialogOutcome::WatchRun(folder) => self.apply(UiCommand::WatchGanRun(Some(folder))),
                DialogOutcome::ImageModel(_)
                | DialogOutcome::ImageCheckpoint(_)
                | DialogOutcome::ImageSettings { .. }
                | DialogOutcome::PadSettings { .. }
                | DialogOutcome::History(_)
                | DialogOutcome::Thumbnails(_)
                | DialogOutcome::Trashed(_)
                | DialogOutcome::Restored(_)
                | DialogOutcome::InitImage(_)
                | DialogOutcome::ModelFolder(_)
                | DialogOutcome::Library(_)
                | DialogOutcome::TrainingFolder(_)
                | DialogOutcome::TrainingText(_)
                | DialogOutcome::OutlierFolder(_)
                | DialogOutcome::DenoiseImage(_)
                | DialogOutcome::ModelsFound(_)
                | DialogOutcome::FolderPreview(_) => {}
            }
        }
        self.handle_download_events();
        let started = std::time::Instant::now();
        self.backlog.extend(self.worker.poll());
        while let Some(event) = self.backlog.pop_front() {
            let purpose = self.jobs.apply(&event);
            self.apply_event(ctx, event, purpose);
            if started.elapsed() > EVENT_BUDGET {
                break;
            }
        }
        if !self.backlog.is_empty() {
            ctx.request_repaint();
        }
    }

    /// Whether a finished job's result still fits what the panel shows: a
    /// decode or encode for a model the user has since left is dropped.
    fn is_current(&self, job: JobId) -> bool {
        let current = self.model_id();
        self.jobs.get(job).is_some_and(|j| j.model.is_some() && j.model == current)
    }

    fn apply_event(&mut self, ctx: &egui::Context, event: WorkerEvent, purpose: Option<Purpose>) {
        let Some(event) = self.apply_text_event(event) else { return };
        let Some(event) = self.apply_train_event(ctx, event) else { return };
        let Some(event) = self.apply_image_event(ctx, event) else { return };
        let Some(event) = self.apply_pad_event(ctx, event) else { return };
        let Some(event) = self.apply_vae_tools_event(ctx, event) else { return };
        match (event, purpose) {
            (WorkerEvent::ModelLoaded { manifest, latent_map, can_encode, directions, .. }, _) => {
                if self.selected.as_deref() != Some(manifest.id.as_str()) {
                    return; // an older selection finished loading late
                }
                self.panel.set_model(*manifest, can_encode, latent_map.as_ref(), directions);
                self.apply(UiCommand::DecodeCurrent);
                self.apply(UiCommand::DecodeStrip);
                self.apply(UiCommand::DecodeGrid);
            }
            (WorkerEvent::Decoded { job, .. } | WorkerEvent::Encoded { job, .. }, _) if !self.is_current(job) => {}
            (WorkerEvent::Decoded { images, .. }, Some(Purpose::Preview)) => {
                if let Some(img) = images.first() {
                    self.panel.set_image(ctx, img);
                }
            }
            (WorkerEvent::Decoded { images, .. }, Some(Purpose::Grid)) => self.panel.set_grid(ctx, &images),
            (WorkerEvent::Decoded { images, latents, .. }, Some(Purpose::Strip)) => {
                self.panel.set_strip(ctx, &images, latents)
            }
            (WorkerEvent::Encoded { latent, source, .. }, Some(Purpose::Encode(slot))) => {
                let label = source.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                match slot {
                    Slot::Current => {
                        self.panel.latent = latent;
                        self.panel.origin = Origin::Encoded(source);
                        self.apply(UiCommand::DecodeCurrent);
                    }
                    Slot::A | Slot::B => {
                        let i = if slot == Slot::A { 0 } else { 1 };
                        self.panel.endpoints[i] = Endpoint { latent, label, seed: None };
                        self.apply(UiCommand::DecodeStrip);
                    }
                }
            }
            (WorkerEvent::Saved { path, .. }, _) => {
                self.notices.push(Notice { text: format!("saved {}", path.display()), error: false })
            }
            (WorkerEvent::Failed { job, error }, _) => {
                let label = self.jobs.get(job).map(|j| j.label.clone()).unwrap_or_default();
                self.notices.push(Notice { text: format!("{label} failed: {error}"), error: true });
            }
            _ => {}
        }
    }
}

impl eframe::App for StudioApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.settings.unfinished_downloads = self.models_panel.unfinished();
        self.settings.training_folder = self.train.use_folder.then(|| self.train.folder_spec.clone());
        self.settings.unfinished_training = self.unfinished_training();
        eframe::set_value(storage, Settings::KEY, &self.settings);
    }
}

/// Asks egui for a frame (what a worker calls after each event).
fn waker(ctx: &egui::Context) -> crate::worker::Waker {
    let ctx = ctx.clone();
    std::sync::Arc::new(move || ctx.request_repaint())
}

/// The device the worker's models run on, as the status bar shows it.
fn device_info() -> DeviceInfo {
    let device = crate::nn::default_device();
    DeviceInfo { kind: crate::nn::device_kind(&device).to_owned(), detail: crate::nn::device_label(&device) }
}
