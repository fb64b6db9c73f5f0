//! The training view: train a DCGAN on the emoji set from the GUI and watch
//! both losses and the fixed-latent sample grid update after every batch and
//! epoch. Training runs on its own thread; this panel only draws what the
//! worker reports.

use std::path::PathBuf;

use egui::{RichText, TextureHandle, TextureOptions, Vec2};
use egui_plot::{Legend, Line, Plot};

use super::latent_panel::to_color_image;
use super::theme;
use crate::io::datasets::{DataSource, DatasetName};
use crate::io::image_folder::{Fit, FolderSpec, Skipped};
use crate::spec::train::GanEpochReport;
use crate::ui::commands::UiCommand;
use crate::ui::models_panel::format_duration;
use crate::worker::JobId;

/// What the model will see from a folder: the first training images as a
/// grid, the counts, the classes and every file left out with its reason.
pub struct FolderPreview {
    pub spec: FolderSpec,
    pub result: Result<FolderSummary, String>,
}

/// A folder read for training, in brief.
pub struct FolderSummary {
    pub grid: image::RgbImage,
    pub train: usize,
    pub held_out: usize,
    pub classes: Vec<String>,
    pub skipped: Vec<Skipped>,
}

/// The training view's state.
pub struct TrainPanel {
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
    preview_texture: Option<TextureHandle>,
    /// Where scripts/fetch-data.sh put the data (holds `emoji/`, `fashion/`, `mnist/`).
    pub data_dir: String,
    /// Epochs to train.
    pub epochs: usize,
    /// Training images to use (0: all).
    pub limit: usize,
    /// Seed of initialisation, batches and latents.
    pub seed: u64,
    /// The run in progress.
    pub running: Option<JobId>,
    /// Where the run writes its checkpoints.
    pub folder: Option<PathBuf>,
    /// (step, loss) of every batch so far.
    pub d_losses: Vec<[f64; 2]>,
    pub g_losses: Vec<[f64; 2]>,
    /// Epoch, batch and batches of the latest step.
    pub position: (usize, usize, usize),
    /// The fixed latents' images after the latest epoch.
    pub grid: Option<TextureHandle>,
    /// The latest epoch's report.
    pub last: Option<GanEpochReport>,
    /// Seconds each finished epoch of this run took (the time-left estimate).
    pub epoch_seconds: Vec<f64>,
}

impl Default for TrainPanel {
    fn default() -> Self {
        Self {
            dataset: DatasetName::Emoji,
            use_folder: false,
            folder_spec: FolderSpec { folder: PathBuf::new(), side: 32, channels: 3, fit: Fit::Crop, flip: false },
            preview: None,
            preview_asked: None,
            preview_texture: None,
            data_dir: "data".into(),
            epochs: 25,
            limit: 0,
            seed: 0,
            running: None,
            folder: None,
            d_losses: Vec::new(),
            g_losses: Vec::new(),
            position: (0, 0, 0),
            grid: None,
            last: None,
            epoch_seconds: Vec::new(),
        }
    }
}

impl TrainPanel {
    /// A run was submitted as `job`: clear the previous run's curves.
    pub fn begin(&mut self, job: JobId) {
        *self = Self { running: Some(job), ..std::mem::take(self) };
        self.d_losses.clear();
        self.g_losses.clear();
        self.grid = None;
        self.last = None;
        self.epoch_seconds.clear();
        self.folder = None;
        self.position = (0, 0, 0);
    }

    /// One training step's losses.
    pub fn push_batch(&mut self, epoch: usize, batch: usize, batches: usize, d_loss: f64, g_loss: f64) {
        let step = self.d_losses.len() as f64;
        self.d_losses.push([step, d_loss]);
        self.g_losses.push([step, g_loss]);
        self.position = (epoch, batch, batches);
    }

    /// An epoch finished.
    pub fn push_epoch(&mut self, ctx: &egui::Context, report: GanEpochReport, grid: &image::RgbImage) {
        self.grid = Some(ctx.load_texture("gan-grid", to_color_image(grid), TextureOptions::NEAREST));
        self.epoch_seconds.push(report.seconds);
        self.last = Some(report);
    }

    /// Time left in a running run: the last few epochs' mean time for each
    /// epoch still to come, less what the current epoch has done.
    pub fn seconds_left(&self) -> Option<f64> {
        self.running?;
        let recent = &self.epoch_seconds[self.epoch_seconds.len().saturating_sub(5)..];
        if recent.is_empty() {
            return None;
        }
        let mean = recent.iter().sum::<f64>() / recent.len() as f64;
        let (_, batch, batches) = self.position;
        let done_in_epoch = if batches > 0 { batch as f64 / batches as f64 } else { 0.0 };
        let remaining_epochs = self.epochs.saturating_sub(self.epoch_seconds.len()) as f64 - done_in_epoch;
        Some((remaining_epochs.max(0.0)) * mean)
    }

    /// What a run will train on.
    pub fn source(&self) -> DataSource {
        if self.use_folder { DataSource::Folder(self.folder_spec.clone()) } else { DataSource::Named(self.dataset) }
    }

    /// A preview of the folder arrived (dropped if the settings changed since).
    pub fn set_preview(&mut self, ctx: &egui::Context, preview: FolderPreview) {
        if preview.spec != self.folder_spec {
            return;
        }
        self.preview_texture = preview
            .result
            .as_ref()
            .ok()
            .map(|s| ctx.load_texture("folder-preview", to_color_image(&s.grid), TextureOptions::NEAREST));
        self.preview = Some(preview);
    }

    /// Whether the preview shows the current settings (else one should be asked for).
    pub fn preview_is_current(&self) -> bool {
        self.preview.as_ref().is_some_and(|p| p.spec == self.folder_spec)
    }

    /// The folder's settings and preview.
    fn folder_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            if ui.button("Choose folder…").clicked() {
                out.push(UiCommand::ChooseTrainingFolder(None));
            }
            let shown = self.folder_spec.folder.display().to_string();
            ui.label(if shown.is_empty() { "no folder yet (or drop one here)".to_owned() } else { shown });
        });
        ui.horizontal(|ui| {
            ui.label("Side");
            for side in [28, 32, 48, 64] {
                ui.radio_value(&mut self.folder_spec.side, side, side.to_string());
            }
            ui.separator();
            let mut grey = self.folder_spec.channels == 1;
            ui.checkbox(&mut grey, "Grey");
            self.folder_spec.channels = if grey { 1 } else { 3 };
            ui.separator();
            for fit in [Fit::Crop, Fit::Pad, Fit::Stretch] {
                ui.radio_value(&mut self.folder_spec.fit, fit, fit.name());
            }
            ui.separator();
            ui.checkbox(&mut self.folder_spec.flip, "Mirrored copies");
        });
        let chosen = !self.folder_spec.folder.as_os_str().is_empty();
        if chosen && !self.preview_is_current() && self.preview_asked.as_ref() != Some(&self.folder_spec) {
            out.push(UiCommand::PreviewTrainingFolder);
        }
        let Some(preview) = self.preview.as_ref().filter(|p| p.spec == self.folder_spec) else {
            if chosen {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("reading the folder…");
                });
            }
            return;
        };
        match &preview.result {
            Err(e) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Ok(summary) => {
                ui.label(format!(
                    "{} training images, {} held out; classes: {}; {} files skipped",
                    summary.train,
                    summary.held_out,
                    summary.classes.join(", "),
                    summary.skipped.len()
                ));
                ui.horizontal_top(|ui| {
                    if let Some(tex) = &self.preview_texture {
                        ui.add(egui::Image::new(tex).fit_to_exact_size(Vec2::splat(240.0)))
                            .on_hover_text("Exactly what the model sees: the first training images");
                    }
                    if !summary.skipped.is_empty() {
                        ui.vertical(|ui| {
                            egui::ScrollArea::vertical().id_salt("skipped").max_height(240.0).show(ui, |ui| {
                                ui.label(RichText::new("Skipped").strong());
                                for s in summary.skipped.iter().take(200) {
                                    let name = s.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                                    ui.label(RichText::new(format!("{name}: {}", s.reason)).small())
                                        .on_hover_text(s.path.display().to_string());
                                }
                            })
                        });
                    }
                });
            }
        }
    }

    /// Draws the panel; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Train a GAN");
        ui.label(
            RichText::new(
                "A DCGAN on your folder of images, or on emoji (32×32 RGB), MNIST or Fashion-MNIST (28×28 grey; \
                 fetch them with scripts/fetch-data.sh). Each run gets a new folder in the output folder, as \
                 `latent-studio train gan --out` writes it: checkpoints, the loss log and grids, and the finished model",
            )
            .weak(),
        );
        let idle = self.running.is_none();
        ui.add_enabled_ui(idle, |ui| {
            egui::Grid::new("train-settings").num_columns(2).show(ui, |ui| {
                ui.label("Data set");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.use_folder, true, "Your folder");
                    for d in [DatasetName::Emoji, DatasetName::Fashion, DatasetName::Mnist] {
                        if ui.radio(!self.use_folder && self.dataset == d, d.name()).clicked() {
                            self.use_folder = false;
                            self.dataset = d;
                        }
                    }
                });
                ui.end_row();
                if !self.use_folder {
                    let label = ui.label("Data sets folder");
                    ui.text_edit_singleline(&mut self.data_dir).labelled_by(label.id);
                    ui.end_row();
                }
                ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut self.epochs).range(1..=1000));
                ui.end_row();
                ui.label("Images");
                ui.add(egui::DragValue::new(&mut self.limit).range(0..=100_000))
                    .on_hover_text("Training images to use; 0 uses all");
                ui.end_row();
                ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.seed).range(0..=u64::from(u32::MAX)));
                ui.end_row();
            });
        });
        if self.use_folder {
            ui.add_enabled_ui(idle, |ui| self.folder_ui(ui, out));
        }
        let ready =
            !self.use_folder || (self.preview_is_current() && self.preview.as_ref().is_some_and(|p| p.result.is_ok()));
        ui.horizontal(|ui| {
            if ui.add_enabled(idle && ready, egui::Button::new("Start training")).clicked() {
                out.push(UiCommand::StartGanTraining);
            }
            let watch = ui.add_enabled(idle, egui::Button::new("Watch a run…"));
            if watch.on_hover_text("Follow a run of `latent-studio train gan` from its --out folder").clicked() {
                out.push(UiCommand::WatchGanRun(None));
            }
            let cancel = ui.add_enabled(!idle, egui::Button::new("Cancel training"));
            if cancel.on_hover_text("Stops after the current batch; the last epoch's checkpoint stays").clicked()
                && let Some(job) = self.running
            {
                out.push(UiCommand::Cancel(job));
            }
            let (epoch, batch, batches) = self.position;
            if batches > 0 {
                let left =
                    self.seconds_left().map(|s| format!(", about {} left", format_duration(s))).unwrap_or_default();
                ui.label(format!("epoch {epoch}/{}, batch {batch}/{batches}{left}", self.epochs));
            }
            if let Some(folder) = &self.folder {
                ui.label(RichText::new(format!("run folder: {}", folder.display())).weak());
            }
        });
        if let Some(r) = &self.last {
            let spread = r.diversity.map(|d| format!(", spread {d:.2} of real")).unwrap_or_default();
            ui.label(format!(
                "epoch {}: D {:.3}, G {:.3}, D(real) {:.2}, D(fake) {:.2}{spread}, {:.1} s",
                r.epoch, r.d_loss, r.g_loss, r.d_real, r.d_fake, r.seconds
            ));
            if let Some(warning) = r.collapse_warning() {
                ui.colored_label(ui.visuals().warn_fg_color, warning);
            }
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(560.0);
                Plot::new("gan-losses")
                    .height(300.0)
                    .legend(Legend::default())
                    .x_axis_label("batch")
                    .y_axis_label("loss")
                    .show(ui, |plot| {
                        plot.line(Line::new("discriminator", self.d_losses.clone()).color(theme::D_LOSS));
                        plot.line(Line::new("generator", self.g_losses.clone()).color(theme::G_LOSS));
                    });
            });
            ui.add_space(theme::COLUMN_GAP);
            ui.vertical(|ui| {
                ui.label("Fixed latents after the latest epoch");
                match &self.grid {
                    Some(tex) => {
                        ui.add(egui::Image::new(tex).fit_to_exact_size(Vec2::splat(300.0)))
                            .on_hover_text("The same 64 latents after every epoch");
                    }
                    None => {
                        let (rect, _) = ui.allocate_exact_size(Vec2::splat(300.0), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 4.0, theme::MAP_BACKGROUND);
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_is_the_recent_epochs_mean_times_what_remains() {
        let mut panel = TrainPanel { epochs: 10, ..TrainPanel::default() };
        assert_eq!(panel.seconds_left(), None, "not running");
        panel.running = Some(JobId(1));
        assert_eq!(panel.seconds_left(), None, "no epoch finished yet");
        panel.epoch_seconds = vec![100.0, 2.0, 4.0, 2.0, 4.0, 2.0, 6.0]; // the first, slow one has left the window
        panel.position = (8, 5, 10); // half of epoch 8
        assert_eq!(panel.seconds_left(), Some(2.5 * 3.6));
    }
}
