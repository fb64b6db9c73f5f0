//! The training view: train a VAE, a DCGAN, the text-conditioned latent
//! diffusion model or the character GPT on the user's own images or text
//! (or a data set the studio knows), from scratch or from a finished model,
//! and watch each family's losses, its samples after every epoch and the
//! time left. Training runs on its own thread; this panel only draws what
//! the worker reports. A paused run (also one the studio was closed on) is
//! offered again: resume it, or export the model from its last checkpoint.

use std::path::PathBuf;

use egui::{RichText, TextureHandle};

use super::train_curves::RunCurves;
pub use super::train_folder_ui::{FolderPreview, FolderSummary};
use crate::io::datasets::{DataSource, DatasetName};
use crate::io::image_folder::{Fit, FolderSpec};
use crate::ui::commands::UiCommand;
use crate::ui::models_panel::format_duration;
use crate::worker::JobId;
use crate::worker::train_plan::TrainRequest;

/// The kind of model a run trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrainFamily {
    Vae,
    Gan,
    Diffusion,
    Text,
}

impl TrainFamily {
    pub const ALL: [TrainFamily; 4] = [TrainFamily::Vae, TrainFamily::Gan, TrainFamily::Diffusion, TrainFamily::Text];

    pub fn name(self) -> &'static str {
        match self {
            TrainFamily::Vae => "VAE",
            TrainFamily::Gan => "GAN",
            TrainFamily::Diffusion => "Latent diffusion",
            TrainFamily::Text => "Character GPT",
        }
    }

    fn about(self) -> &'static str {
        match self {
            TrainFamily::Vae => {
                "An encoder and a decoder balancing reconstruction against the prior (β weighs the KL term). \
                 The result opens in the Latent view with sliders, interpolation, outliers and denoising"
            }
            TrainFamily::Gan => {
                "A DCGAN: a generator and a discriminator improving against each other. Start from emoji-dcgan \
                 to fine-tune it on 32×32 colour images"
            }
            TrainFamily::Diffusion => {
                "The text-conditioned latent diffusion model: an autoencoder, then a U-Net with its text encoder \
                 learning to undo noise. Captions come from a .txt file beside each image, else its file name. \
                 Start from emoji-ldm to fine-tune it (its autoencoder and tokenizer are kept)"
            }
            TrainFamily::Text => {
                "A character-level transformer learning your text (one .txt file or a folder of them); the \
                 plot shows the held-out nats per character"
            }
        }
    }

    /// Whether the family trains on images.
    pub fn on_images(self) -> bool {
        self != TrainFamily::Text
    }
}

/// A finished model a run may start from (fine-tuning).
#[derive(Clone, Debug, PartialEq)]
pub struct BaseModel {
    pub id: String,
    pub dir: PathBuf,
    pub family: TrainFamily,
    pub side: usize,
    pub channels: usize,
}

/// The training view's state.
pub struct TrainPanel {
    /// What kind of model to train.
    pub family: TrainFamily,
    /// What to train on (when no folder is used).
    pub dataset: DatasetName,
    /// Train on the user's folder instead of `dataset`.
    pub use_folder: bool,
    /// The user's folder and how its images are prepared.
    pub folder_spec: FolderSpec,
    /// The latest preview of `folder_spec`, and its texture.
    pub preview: Option<FolderPreview>,
    /// The settings a preview was last asked for (one request per change).
    pub preview_asked: Option<FolderSpec>,
    pub(super) preview_texture: Option<TextureHandle>,
    /// The character GPT's text: a .txt file or a folder of them (empty: Shakespeare).
    pub text_path: String,
    /// Where scripts/fetch-data.sh put the data (holds `emoji/`, `fashion/`, `mnist/`).
    pub data_dir: String,
    /// Epochs to train (the U-Net's, for diffusion).
    pub epochs: usize,
    /// Epochs of the diffusion model's autoencoder.
    pub autoencoder_epochs: usize,
    /// Width of a new diffusion model's U-Net and text encoder (64 is emoji-ldm's).
    pub diffusion_width: usize,
    /// Optimiser steps of the character GPT.
    pub steps: usize,
    /// The character GPT's transformer blocks, width (4 heads) and context in characters.
    pub gpt_layers: usize,
    pub gpt_width: usize,
    pub gpt_context: usize,
    /// The VAE's latent size and KL weight.
    pub latent_dim: usize,
    pub beta: f64,
    /// The finished model to start from (an id among `bases`), if any.
    pub base: Option<String>,
    /// Models a run can start from.
    pub bases: Vec<BaseModel>,
    /// Training images to use (0: all).
    pub limit: usize,
    /// Seed of initialisation, batches and latents.
    pub seed: u64,
    /// The run in progress.
    pub running: Option<JobId>,
    /// The running run was asked to pause (not cancel).
    pub pausing: bool,
    /// A run that stopped before its end and can go on.
    pub paused: Option<TrainRequest>,
    /// What the current (or last) run reported.
    pub run: RunCurves,
}

impl Default for TrainPanel {
    fn default() -> Self {
        Self {
            family: TrainFamily::Gan,
            dataset: DatasetName::Emoji,
            use_folder: false,
            folder_spec: FolderSpec { folder: PathBuf::new(), side: 32, channels: 3, fit: Fit::Crop, flip: false },
            preview: None,
            preview_asked: None,
            preview_texture: None,
            text_path: String::new(),
            data_dir: "data".into(),
            epochs: 25,
            autoencoder_epochs: 20,
            diffusion_width: 64,
            steps: 2000,
            gpt_layers: 4,
            gpt_width: 192,
            gpt_context: 128,
            latent_dim: 16,
            beta: 1.0,
            base: None,
            bases: Vec::new(),
            limit: 0,
            seed: 0,
            running: None,
            pausing: false,
            paused: None,
            run: RunCurves::default(),
        }
    }
}

impl TrainPanel {
    /// A run was submitted as `job`: clear the previous run's curves.
    pub fn begin(&mut self, job: JobId) {
        self.running = Some(job);
        self.pausing = false;
        self.run = RunCurves::default();
    }

    /// The models the current family and images can start from.
    pub fn usable_bases(&self) -> Vec<&BaseModel> {
        let (side, channels) = self.source().image_shape();
        self.bases.iter().filter(|b| b.family == self.family && (b.side, b.channels) == (side, channels)).collect()
    }

    /// What a run will train on.
    pub fn source(&self) -> DataSource {
        if self.use_folder { DataSource::Folder(self.folder_spec.clone()) } else { DataSource::Named(self.dataset) }
    }

    /// Draws the panel; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Train a model");
        let idle = self.running.is_none();
        ui.add_enabled_ui(idle, |ui| {
            ui.horizontal(|ui| {
                for family in TrainFamily::ALL {
                    if ui.selectable_label(self.family == family, family.name()).clicked() && self.family != family {
                        self.family = family;
                        self.base = None;
                        self.epochs = if family == TrainFamily::Diffusion { 40 } else { 25 };
                    }
                }
            });
        });
        ui.label(RichText::new(self.family.about()).weak());
        ui.add_enabled_ui(idle, |ui| self.settings_ui(ui, out));
        if self.family.on_images() && self.use_folder {
            ui.add_enabled_ui(idle, |ui| self.folder_ui(ui, out));
        }
        self.paused_ui(ui, out);
        self.controls_ui(ui, out);
        if let Some(r) = &self.run.last {
            ui.label(&r.line);
            if let Some(warning) = &r.warning {
                ui.colored_label(ui.visuals().warn_fg_color, warning);
            }
        }
        self.run.ui(ui);
    }

    /// The family's settings and its data.
    fn settings_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        egui::Grid::new("train-settings").num_columns(2).show(ui, |ui| {
            ui.label("Data");
            ui.horizontal(|ui| {
                if self.family.on_images() {
                    ui.radio_value(&mut self.use_folder, true, "Your folder");
                    let named: &[DatasetName] = if self.family == TrainFamily::Diffusion {
                        &[DatasetName::Emoji]
                    } else {
                        &[DatasetName::Emoji, DatasetName::Fashion, DatasetName::Mnist]
                    };
                    for d in named {
                        if ui.radio(!self.use_folder && self.dataset == *d, d.name()).clicked() {
                            self.use_folder = false;
                            self.dataset = *d;
                        }
                    }
                } else {
                    if ui.button("Choose text…").clicked() {
                        out.push(UiCommand::ChooseTrainingText);
                    }
                    ui.add(
                        egui::TextEdit::singleline(&mut self.text_path).hint_text("Shakespeare (or drop a .txt file)"),
                    );
                }
            });
            ui.end_row();
            let named_images = self.family.on_images() && !self.use_folder;
            if named_images || (!self.family.on_images() && self.text_path.trim().is_empty()) {
                let label = ui.label("Data sets folder");
                ui.text_edit_singleline(&mut self.data_dir).labelled_by(label.id);
                ui.end_row();
            }
            match self.family {
                TrainFamily::Text => {
                    let label = ui.label("Steps");
                    ui.add(egui::DragValue::new(&mut self.steps).range(1..=1_000_000)).labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Layers");
                    ui.add(egui::DragValue::new(&mut self.gpt_layers).range(1..=12)).labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Width");
                    ui.add(egui::DragValue::new(&mut self.gpt_width).range(16..=512).speed(4))
                        .labelled_by(label.id)
                        .on_hover_text("Width of the residual stream, 4 attention heads (a multiple of 4)");
                    ui.end_row();
                    let label = ui.label("Context");
                    ui.add(egui::DragValue::new(&mut self.gpt_context).range(8..=1024))
                        .labelled_by(label.id)
                        .on_hover_text("Characters the model sees at once");
                    ui.end_row();
                }
                TrainFamily::Diffusion => {
                    let label = ui.label("Autoencoder epochs");
                    ui.add_enabled(
                        self.base.is_none(),
                        egui::DragValue::new(&mut self.autoencoder_epochs).range(1..=1000),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    ui.label("Network width");
                    ui.add_enabled_ui(self.base.is_none(), |ui| {
                        ui.horizontal(|ui| {
                            for width in [32, 64, 128] {
                                ui.radio_value(&mut self.diffusion_width, width, width.to_string());
                            }
                        })
                        .response
                        .on_hover_text("U-Net channels (and twice that at its second level), text encoder width")
                    });
                    ui.end_row();
                    let label = ui.label("U-Net epochs");
                    ui.add(egui::DragValue::new(&mut self.epochs).range(1..=1000)).labelled_by(label.id);
                    ui.end_row();
                }
                TrainFamily::Vae | TrainFamily::Gan => {
                    let label = ui.label("Epochs");
                    ui.add(egui::DragValue::new(&mut self.epochs).range(1..=1000)).labelled_by(label.id);
                    ui.end_row();
                }
            }
            if self.family == TrainFamily::Vae {
                let label = ui.label("Latent size");
                ui.add(egui::DragValue::new(&mut self.latent_dim).range(1..=256)).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("β");
                ui.add(egui::DragValue::new(&mut self.beta).range(0.0..=100.0).speed(0.05))
                    .labelled_by(label.id)
                    .on_hover_text("Weight of the KL term: 1 is a plain VAE; more untangles the latent, blurs more");
                ui.end_row();
            }
            if matches!(self.family, TrainFamily::Gan | TrainFamily::Diffusion) {
                let bases: Vec<String> = self.usable_bases().iter().map(|b| b.id.clone()).collect();
                if self.base.as_ref().is_some_and(|b| !bases.contains(b)) {
                    self.base = None;
                }
                ui.label("Start from");
                egui::ComboBox::from_id_salt("train-base")
                    .selected_text(self.base.clone().unwrap_or_else(|| "new networks".into()))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.base, None, "new networks");
                        for id in bases {
                            ui.selectable_value(&mut self.base, Some(id.clone()), id);
                        }
                    })
                    .response
                    .on_hover_text("Fine-tune a finished model of the same image size on this data");
                ui.end_row();
            }
            if self.family.on_images() {
                let label = ui.label("Images");
                ui.add(egui::DragValue::new(&mut self.limit).range(0..=100_000))
                    .labelled_by(label.id)
                    .on_hover_text("Training images to use; 0 uses all");
                ui.end_row();
            }
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.seed).range(0..=u64::from(u32::MAX))).labelled_by(label.id);
            ui.end_row();
        });
    }

    /// A run that can go on: resume it, export what it has, or forget it.
    fn paused_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        let Some(paused) = &self.paused else { return };
        if self.running.is_some() {
            return;
        }
        let folder = paused.folder.known().map(|f| f.display().to_string()).unwrap_or_default();
        ui.group(|ui| {
            ui.horizontal(|ui| {
                ui.label(format!("A {} run is paused in {folder}", paused.plan.stem()));
                if ui.button("Resume").on_hover_text("Go on from the last epoch's checkpoint").clicked() {
                    out.push(UiCommand::ResumeTraining);
                }
                if ui.button("Export now").on_hover_text("Write the model from the last checkpoint").clicked() {
                    out.push(UiCommand::FinishTraining);
                }
                if ui.button("Forget").on_hover_text("The folder and its checkpoints stay").clicked() {
                    out.push(UiCommand::ForgetPausedTraining);
                }
            });
        });
    }

    /// Start, watch, pause and cancel, and where the run is.
    fn controls_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        let idle = self.running.is_none();
        let ready = !self.family.on_images()
            || !self.use_folder
            || (self.preview_is_current() && self.preview.as_ref().is_some_and(|p| p.result.is_ok()));
        ui.horizontal(|ui| {
            if ui.add_enabled(idle && ready, egui::Button::new("Start training")).clicked() {
                out.push(UiCommand::StartTraining);
            }
            if self.family == TrainFamily::Gan {
                let watch = ui.add_enabled(idle, egui::Button::new("Watch a run…"));
                if watch.on_hover_text("Follow a run of `latent-studio train gan` from its --out folder").clicked() {
                    out.push(UiCommand::WatchGanRun(None));
                }
            }
            let pause = ui.add_enabled(!idle && !self.pausing, egui::Button::new("Pause"));
            if pause.on_hover_text("Stops now; Resume goes on from the last epoch, also after a restart").clicked() {
                out.push(UiCommand::PauseTraining);
            }
            let cancel = ui.add_enabled(!idle, egui::Button::new("Cancel training"));
            if cancel.on_hover_text("Stops after the current batch; the last epoch's checkpoint stays").clicked()
                && let Some(job) = self.running
            {
                out.push(UiCommand::Cancel(job));
            }
            let (epoch, batch, batches) = self.run.position;
            if batches > 0 {
                let left = self
                    .run
                    .seconds_left()
                    .filter(|_| self.running.is_some())
                    .map(|s| format!(", about {} left", format_duration(s)))
                    .unwrap_or_default();
                let stage = if self.run.stage.is_empty() { String::new() } else { format!("{}: ", self.run.stage) };
                ui.label(format!("{stage}epoch {epoch}/{}, batch {batch}/{batches}{left}", self.run.planned));
            }
            if let Some(folder) = &self.run.folder {
                ui.label(RichText::new(format!("run folder: {}", folder.display())).weak());
            }
        });
    }
}
