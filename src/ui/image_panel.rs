//! The image panel: pick a diffusion model (installed, or any diffusers
//! folder), write a prompt and a negative prompt, choose sampler, steps,
//! guidance, size, seed and batch count, and queue images. The running
//! image's denoising shows live with progress and ETA; every job can be
//! cancelled; finished images fill a grid. Clicking a result reuses its
//! settings; marking two as A and B queues a walk between their seeds'
//! noise (spherical interpolation of the initial latents).

use std::path::PathBuf;
use std::time::Instant;

use egui::{RichText, TextureHandle};

use super::theme;
use crate::io::image_record::ImageRecord;
use crate::io::manifest::ModelManifest;
use crate::spec::image::{ImageRequest, SamplerKind, VariationSeed};
use crate::spec::library::{ItemKind, LibraryItem};
use crate::ui::commands::UiCommand;
use crate::worker::{ImageModelRef, JobId};

/// Side of the live preview, in points.
const PREVIEW_SIDE: f32 = 256.0;
/// Side of a result thumbnail, in points.
const RESULT_SIDE: f32 = 96.0;

/// What the panel shows besides its own state.
pub struct ImagePanelContext<'a> {
    /// Installed diffusion models.
    pub models: &'a [ModelManifest],
    /// Checkpoints of the healthy A1111-compatible backends, each with the backends that have it.
    pub remote: &'a [(String, Vec<String>)],
    /// The LoRAs of the backends that have the chosen remote checkpoint.
    pub remote_loras: &'a [String],
    /// The model library's items (checkpoints, VAEs, LoRAs, …).
    pub library: &'a [LibraryItem],
    /// The library's folders.
    pub folders: &'a [PathBuf],
}

/// A queued or running image.
pub struct QueuedImage {
    pub job: JobId,
    pub label: String,
    pub step: usize,
    pub total: usize,
    /// When its first step began (for the ETA).
    pub started: Option<Instant>,
}

/// A finished image.
pub struct ImageResult {
    pub texture: TextureHandle,
    pub record: ImageRecord,
    /// Its initial latent (for seed interpolation).
    pub noise: Vec<f32>,
    /// Where it was saved, or why it could not be.
    pub saved: Result<PathBuf, String>,
}

/// The image panel's state.
pub struct ImagePanel {
    pub model: Option<ImageModelRef>,
    pub prompt: String,
    pub negative: String,
    pub sampler: SamplerKind,
    pub steps: usize,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// Draw a fresh seed for every batch.
    pub random_seed: bool,
    /// Images per click, seeds `seed`, `seed + 1`, …
    pub batch: usize,
    /// img2img: the init image and strength.
    pub init_image: Option<PathBuf>,
    pub strength: f64,
    /// A1111's variation seed, when a restored image had one (kept so that
    /// "reuse settings" reproduces it).
    pub variation: Option<VariationSeed>,
    /// Preview every this many steps.
    pub preview_every: usize,
    /// Frames of a seed walk between results A and B.
    pub walk_frames: usize,
    pub queue: Vec<QueuedImage>,
    /// The latest preview and the job it belongs to.
    pub preview: Option<(JobId, TextureHandle)>,
    pub results: Vec<ImageResult>,
    /// Indices into `results` of the walk's ends.
    pub ends: [Option<usize>; 2],
    /// The LoRA picker's choice (a library name) and weight.
    pub lora_choice: Option<String>,
    pub lora_weight: f64,
}

impl Default for ImagePanel {
    fn default() -> Self {
        Self {
            model: None,
            prompt: String::new(),
            negative: String::new(),
            sampler: SamplerKind::EulerAncestral,
            steps: 25,
            guidance: 5.0,
            width: 32,
            height: 32,
            seed: 1,
            random_seed: false,
            batch: 4,
            init_image: None,
            strength: 0.75,
            variation: None,
            preview_every: 1,
            walk_frames: 6,
            queue: Vec::new(),
            preview: None,
            results: Vec::new(),
            ends: [None, None],
            lora_choice: None,
            lora_weight: 1.0,
        }
    }
}

impl ImagePanel {
    /// The request for the `i`-th image of a batch.
    pub fn request(&self, i: usize) -> ImageRequest {
        ImageRequest {
            prompt: self.prompt.clone(),
            negative: self.negative.clone(),
            steps: self.steps,
            sampler: self.sampler,
            guidance: self.guidance,
            width: self.width,
            height: self.height,
            seed: self.seed.wrapping_add(i as u64),
            strength: self.strength,
            variation: self.variation,
        }
    }

    /// Takes over a stored image's settings (its seed included).
    pub fn restore(&mut self, record: &ImageRecord) {
        let r = &record.request;
        self.prompt = r.prompt.clone();
        self.negative = r.negative.clone();
        self.sampler = r.sampler;
        self.steps = r.steps.clamp(1, 150);
        self.guidance = r.guidance;
        if r.width > 0 && r.height > 0 {
            self.width = r.width;
            self.height = r.height;
        }
        self.seed = r.seed;
        self.strength = r.strength;
        self.variation = r.variation;
        self.random_seed = false;
    }

    /// A job was queued.
    pub fn queued(&mut self, job: JobId, label: String) {
        self.queue.push(QueuedImage { job, label, step: 0, total: 0, started: None });
    }

    /// A job reported a step.
    pub fn progress(&mut self, job: JobId, step: usize, total: usize) {
        if let Some(q) = self.queue.iter_mut().find(|q| q.job == job) {
            if q.started.is_none() && total > 0 {
                q.started = Some(Instant::now());
            }
            (q.step, q.total) = (step, total);
        }
    }

    /// A job ended (finished, failed or cancelled).
    pub fn ended(&mut self, job: JobId) {
        self.queue.retain(|q| q.job != job);
        if self.preview.as_ref().is_some_and(|(j, _)| *j == job) {
            self.preview = None;
        }
    }

    /// Whether `job` is one of the panel's.
    pub fn owns(&self, job: JobId) -> bool {
        self.queue.iter().any(|q| q.job == job)
    }

    /// Draws the panel; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &ImagePanelContext, out: &mut Vec<UiCommand>) {
        self.model_row_ui(ui, ctx, out);
        self.library_row_ui(ui, ctx, out);
        ui.add_space(6.0);
        ui.columns(2, |cols| {
            self.prompt_ui(&mut cols[0], out);
            self.settings_ui(&mut cols[1], out);
        });
        ui.separator();
        ui.horizontal_top(|ui| {
            self.preview_ui(ui, out);
            ui.add_space(theme::COLUMN_GAP);
            ui.vertical(|ui| self.results_ui(ui, out));
        });
    }

    fn model_row_ui(&mut self, ui: &mut egui::Ui, ctx: &ImagePanelContext, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.heading("Image");
            let shown = match &self.model {
                Some(ImageModelRef::Id(id)) => ctx.models.iter().find(|m| &m.id == id).map_or(id.clone(), |m| m.name.clone()),
                Some(other) => other.to_string(),
                None => "(no model)".into(),
            };
            egui::ComboBox::from_label("Diffusion model").selected_text(shown).show_ui(ui, |ui| {
                for m in ctx.models {
                    let chosen = ImageModelRef::Id(m.id.clone());
                    if ui.selectable_label(self.model.as_ref() == Some(&chosen), &m.name).clicked() {
                        out.push(UiCommand::SelectImageModel(chosen));
                    }
                }
                for item in ctx.library {
                    let chosen = match &item.kind {
                        ItemKind::Checkpoint { .. } => ImageModelRef::File { file: item.path.clone(), vae: None },
                        ItemKind::DiffusersFolder => ImageModelRef::Dir(item.path.clone()),
                        _ => continue,
                    };
                    let same = match (&self.model, &chosen) {
                        (Some(ImageModelRef::File { file: a, .. }), ImageModelRef::File { file: b, .. }) => a == b,
                        (current, chosen) => current.as_ref() == Some(chosen),
                    };
                    let label = format!("{} ({})", item.name, item.kind.label());
                    if ui.selectable_label(same, label).clicked() {
                        out.push(UiCommand::SelectImageModel(chosen));
                    }
                }
                if !ctx.remote.is_empty() {
                    ui.separator();
                }
                for (model, urls) in ctx.remote {
                    let chosen = ImageModelRef::Remote { model: model.clone() };
                    let label = super::backends_view::remote_label(model, urls);
                    if ui.selectable_label(self.model.as_ref() == Some(&chosen), label).on_hover_text(urls.join("\n")).clicked() {
                        out.push(UiCommand::SelectImageModel(chosen));
                    }
                }
            });
            if ui.button("Open model folder…").on_hover_text("A Stable Diffusion folder in the diffusers layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/)").clicked() {
                out.push(UiCommand::OpenImageModel);
            }
            if ui.button("Open checkpoint…").on_hover_text("A single .safetensors file as A1111 and ComfyUI keep them (SD 1.x, 2.x, XL; fp32, fp16 or bf16)").clicked() {
                out.push(UiCommand::OpenImageCheckpoint);
            }
            if ui.button("Open image…").on_hover_text("Restore the settings stored in a PNG (ours, or AUTOMATIC1111-style)").clicked() {
                out.push(UiCommand::OpenImageSettings);
            }
        });
    }

    /// The library: its folders, a VAE for single-file checkpoints, and
    /// LoRAs added to the prompt as A1111's `<lora:name:weight>` tags.
    fn library_row_ui(&mut self, ui: &mut egui::Ui, ctx: &ImagePanelContext, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            if let Some(ImageModelRef::File { file, vae }) = &self.model {
                let shown = vae
                    .as_ref()
                    .and_then(|v| v.file_stem())
                    .map_or("Automatic".into(), |s| s.to_string_lossy().into_owned());
                let mut chosen = None;
                egui::ComboBox::from_label("VAE").selected_text(shown).show_ui(ui, |ui| {
                    if ui.selectable_label(vae.is_none(), "Automatic").clicked() {
                        chosen = Some(None);
                    }
                    for item in ctx.library.iter().filter(|i| i.kind == ItemKind::Vae) {
                        if ui.selectable_label(vae.as_ref() == Some(&item.path), &item.name).clicked() {
                            chosen = Some(Some(item.path.clone()));
                        }
                    }
                });
                if let Some(vae) = chosen {
                    out.push(UiCommand::SelectImageModel(ImageModelRef::File { file: file.clone(), vae }));
                }
            }
            // A remote checkpoint takes its servers' LoRAs; a local one the library's.
            let loras: Vec<String> = match &self.model {
                Some(ImageModelRef::Remote { .. }) => ctx.remote_loras.to_vec(),
                _ => ctx.library.iter().filter(|i| i.kind == ItemKind::Lora).map(|i| i.name.clone()).collect(),
            };
            if !loras.is_empty() {
                let shown = self.lora_choice.clone().unwrap_or_else(|| "(choose)".into());
                egui::ComboBox::from_label("LoRA").selected_text(shown).show_ui(ui, |ui| {
                    for name in &loras {
                        ui.selectable_value(&mut self.lora_choice, Some(name.clone()), name);
                    }
                });
                ui.add(egui::Slider::new(&mut self.lora_weight, -1.0..=2.0).step_by(0.05).text("weight"));
                let ready = self.lora_choice.is_some();
                if ui
                    .add_enabled(ready, egui::Button::new("Add LoRA"))
                    .on_hover_text("Adds <lora:name:weight> to the prompt, as A1111 does")
                    .clicked()
                    && let Some(name) = &self.lora_choice
                {
                    let tag = format!("<lora:{name}:{}>", (self.lora_weight * 100.0).round() / 100.0);
                    if !self.prompt.is_empty() && !self.prompt.ends_with(' ') {
                        self.prompt.push(' ');
                    }
                    self.prompt.push_str(&tag);
                }
            }
        });
        egui::CollapsingHeader::new(format!("Model library ({} items)", ctx.library.len()))
            .id_salt("model-library")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if ui
                        .button("Add model folder…")
                        .on_hover_text("An AUTOMATIC1111/Forge or ComfyUI install, or any folder of .safetensors files")
                        .clicked()
                    {
                        out.push(UiCommand::AddModelFolder(None));
                    }
                    if ui.add_enabled(!ctx.folders.is_empty(), egui::Button::new("Rescan")).clicked() {
                        out.push(UiCommand::RescanLibrary);
                    }
                });
                for folder in ctx.folders {
                    ui.horizontal(|ui| {
                        ui.monospace(folder.display().to_string());
                        if ui.small_button("Remove").clicked() {
                            out.push(UiCommand::RemoveModelFolder(folder.clone()));
                        }
                    });
                }
                egui::Grid::new("library-items").striped(true).num_columns(4).show(ui, |ui| {
                    for item in ctx.library {
                        ui.label(&item.name).on_hover_text(item.path.display().to_string());
                        ui.label(item.kind.label());
                        ui.label(format!("{:.1} MB", item.size as f64 / (1024.0 * 1024.0)));
                        ui.monospace(item.hash.as_deref().unwrap_or(""));
                        ui.end_row();
                    }
                });
            });
    }

    fn prompt_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        labelled_text(ui, "Prompt", &mut self.prompt, "red heart", 3);
        labelled_text(ui, "Negative prompt", &mut self.negative, "what to steer away from", 2);
        ui.horizontal(|ui| {
            let ready = self.model.is_some() && !self.prompt.trim().is_empty();
            let text = if self.batch > 1 { format!("Generate {}", self.batch) } else { "Generate".to_owned() };
            if ui.add_enabled(ready, egui::Button::new(text)).clicked() {
                out.push(UiCommand::GenerateImages);
            }
            if ui.add_enabled(!self.queue.is_empty(), egui::Button::new("Cancel all")).clicked() {
                out.extend(self.queue.iter().map(|q| UiCommand::Cancel(q.job)));
            }
        });
        ui.horizontal(|ui| match &self.init_image {
            Some(path) => {
                let name =
                    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
                ui.label(format!("Init image: {name}"));
                if ui.small_button("Clear").on_hover_text("Back to text-to-image").clicked() {
                    out.push(UiCommand::ClearInitImage);
                }
                ui.add(egui::Slider::new(&mut self.strength, 0.05..=1.0).text("Strength"));
            }
            None => {
                if ui.button("Init image…").on_hover_text("Image-to-image: start from a picture").clicked() {
                    out.push(UiCommand::PickInitImage);
                }
            }
        });
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        egui::Grid::new("diffusion-settings").num_columns(2).spacing([12.0, 4.0]).show(ui, |ui| {
            ui.label("Sampler");
            egui::ComboBox::from_id_salt("sampler")
                .selected_text(self.sampler.a1111_name())
                .show_ui(ui, |ui| {
                    for kind in SamplerKind::ALL {
                        ui.selectable_value(&mut self.sampler, kind, kind.a1111_name());
                    }
                })
                .response
                .on_hover_text("The sampler, by A1111's name");
            ui.end_row();
            ui.label("Steps");
            ui.add(egui::Slider::new(&mut self.steps, 1..=150)).on_hover_text("Denoising steps");
            ui.end_row();
            ui.label("Guidance");
            ui.add(egui::Slider::new(&mut self.guidance, 0.0..=20.0).step_by(0.5))
                .on_hover_text("Classifier-free guidance; 1 or less runs the prompt alone (SD-Turbo)");
            ui.end_row();
            ui.label("Size");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut self.width).range(8..=2048).speed(8.0).suffix(" w"));
                ui.add(egui::DragValue::new(&mut self.height).range(8..=2048).speed(8.0).suffix(" h"));
            });
            ui.end_row();
            ui.label("Seed");
            ui.horizontal(|ui| {
                ui.add_enabled(!self.random_seed, egui::DragValue::new(&mut self.seed)).on_hover_text("Seed");
                ui.checkbox(&mut self.random_seed, "Random");
                let last = self.results.last().map(|r| r.record.request.seed);
                if ui
                    .add_enabled(last.is_some(), egui::Button::new("Reuse"))
                    .on_hover_text("The last image's seed")
                    .clicked()
                    && let Some(seed) = last
                {
                    self.seed = seed;
                    self.random_seed = false;
                }
            });
            ui.end_row();
            ui.label("Variation seed");
            ui.horizontal(|ui| {
                let mut on = self.variation.is_some();
                if ui
                    .checkbox(&mut on, "")
                    .on_hover_text("A1111's variation seed: the noise moves towards this seed's")
                    .changed()
                {
                    self.variation = on.then_some(VariationSeed { seed: self.seed.wrapping_add(1), strength: 0.2 });
                }
                if let Some(v) = &mut self.variation {
                    ui.add(egui::DragValue::new(&mut v.seed));
                    ui.add(egui::Slider::new(&mut v.strength, 0.0..=1.0).text("strength"));
                }
            });
            ui.end_row();
            ui.label("Batch count");
            ui.add(egui::Slider::new(&mut self.batch, 1..=16)).on_hover_text("Images made one after another");
            ui.end_row();
            ui.label("Preview every");
            ui.add(egui::Slider::new(&mut self.preview_every, 0..=10).suffix(" steps")).on_hover_text("0: no previews");
            ui.end_row();
        });
        let _ = out;
    }

    fn preview_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.vertical(|ui| {
            ui.set_width(PREVIEW_SIDE);
            let shown = self.preview.as_ref().map(|(_, t)| t).or_else(|| self.results.last().map(|r| &r.texture));
            match shown {
                Some(texture) => {
                    ui.add(
                        egui::Image::new(texture)
                            .fit_to_exact_size(egui::vec2(PREVIEW_SIDE, PREVIEW_SIDE))
                            .texture_options(egui::TextureOptions::NEAREST),
                    );
                }
                None => {
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(PREVIEW_SIDE, PREVIEW_SIDE), egui::Sense::hover());
                    ui.painter().rect_filled(rect, 4.0, theme::MAP_BACKGROUND);
                }
            }
            for q in &self.queue {
                ui.horizontal(|ui| {
                    if q.total == 0 {
                        ui.label(format!("{}: waiting", q.label));
                    } else {
                        let fraction = q.step as f32 / q.total as f32;
                        let eta = q.started.filter(|_| q.step > 0).map(|t| {
                            let per_step = t.elapsed().as_secs_f64() / q.step as f64;
                            format!(", ETA {:.0} s", per_step * (q.total - q.step) as f64)
                        });
                        let text = format!("{} {}/{}{}", q.label, q.step, q.total, eta.unwrap_or_default());
                        ui.add(egui::ProgressBar::new(fraction).text(text).desired_width(PREVIEW_SIDE - 30.0));
                    }
                    if ui.small_button("Cancel").on_hover_text("Stop this image").clicked() {
                        out.push(UiCommand::Cancel(q.job));
                    }
                });
            }
        });
    }

    fn results_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Results ({})", self.results.len())).strong());
            ui.label(RichText::new("click: reuse settings · right-click: mark as walk end A/B").weak().small());
        });
        let mut clicked = None;
        let mut mark = None;
        ui.horizontal_wrapped(|ui| {
            for (i, r) in self.results.iter().enumerate() {
                let end = self.ends.iter().position(|e| *e == Some(i));
                let response = ui
                    .add(
                        egui::Image::new(&r.texture)
                            .fit_to_exact_size(egui::vec2(RESULT_SIDE, RESULT_SIDE))
                            .texture_options(egui::TextureOptions::NEAREST)
                            .sense(egui::Sense::click()),
                    )
                    .on_hover_text(format!(
                        "{} — seed {}{}",
                        r.record.request.prompt,
                        r.record.request.seed,
                        match &r.saved {
                            Ok(p) => format!("\n{}", p.display()),
                            Err(e) => format!("\nnot saved: {e}"),
                        }
                    ));
                if let Some(e) = end {
                    ui.painter().text(
                        response.rect.left_top() + egui::vec2(4.0, 2.0),
                        egui::Align2::LEFT_TOP,
                        ["A", "B"][e],
                        egui::FontId::proportional(16.0),
                        theme::ENDPOINT,
                    );
                }
                if response.clicked() {
                    clicked = Some(i);
                }
                if response.secondary_clicked() {
                    mark = Some(i);
                }
            }
        });
        if let Some(i) = clicked {
            let record = self.results[i].record.clone();
            self.restore(&record);
        }
        if let Some(i) = mark {
            self.ends = match self.ends {
                [Some(a), None] if a != i => [Some(a), Some(i)],
                _ => [Some(i), None],
            };
        }
        if let [Some(_), Some(_)] = self.ends {
            ui.horizontal(|ui| {
                ui.add(egui::Slider::new(&mut self.walk_frames, 3..=16).text("frames"));
                if ui
                    .button("Walk A → B")
                    .on_hover_text("Same settings as A; the initial noise slerps from A's seed to B's")
                    .clicked()
                {
                    out.push(UiCommand::WalkSeeds);
                }
            });
        }
    }
}

/// A full-width multi-line text box under its label (which names it for screen readers and tests).
fn labelled_text(ui: &mut egui::Ui, label: &str, text: &mut String, hint: &str, rows: usize) {
    let label = ui.label(label);
    ui.add(egui::TextEdit::multiline(text).hint_text(hint).desired_rows(rows).desired_width(f32::INFINITY))
        .labelled_by(label.id);
}
