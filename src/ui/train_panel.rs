//! The training view: train a DCGAN on the emoji set from the GUI and watch
//! both losses and the fixed-latent sample grid update after every batch and
//! epoch. Training runs on its own thread; this panel only draws what the
//! worker reports.

use std::path::PathBuf;

use egui::{RichText, TextureHandle, TextureOptions, Vec2};
use egui_plot::{Legend, Line, Plot};

use super::latent_panel::to_color_image;
use super::theme;
use crate::io::datasets::DatasetName;
use crate::spec::train::GanEpochReport;
use crate::ui::commands::UiCommand;
use crate::worker::JobId;

/// The training view's state.
pub struct TrainPanel {
    /// What to train on.
    pub dataset: DatasetName,
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
}

impl Default for TrainPanel {
    fn default() -> Self {
        Self {
            dataset: DatasetName::Emoji,
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
        self.last = Some(report);
    }

    /// Draws the panel; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Train a GAN");
        ui.label(
            RichText::new(
                "A DCGAN (emoji 32×32 RGB, MNIST and Fashion-MNIST 28×28 grey; fetch them with \
                 scripts/fetch-data.sh). Each run gets a new folder in the output folder, as `latent-studio \
                 train gan --out` writes it: checkpoints, the loss log and grids, and the finished model",
            )
            .weak(),
        );
        let idle = self.running.is_none();
        ui.add_enabled_ui(idle, |ui| {
            egui::Grid::new("train-settings").num_columns(2).show(ui, |ui| {
                ui.label("Data set");
                ui.horizontal(|ui| {
                    for d in [DatasetName::Emoji, DatasetName::Fashion, DatasetName::Mnist] {
                        ui.radio_value(&mut self.dataset, d, d.name());
                    }
                });
                ui.end_row();
                let label = ui.label("Data folder");
                ui.text_edit_singleline(&mut self.data_dir).labelled_by(label.id);
                ui.end_row();
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
        ui.horizontal(|ui| {
            if ui.add_enabled(idle, egui::Button::new("Start training")).clicked() {
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
                ui.label(format!("epoch {epoch}/{}, batch {batch}/{batches}", self.epochs));
            }
            if let Some(folder) = &self.folder {
                ui.label(RichText::new(format!("run folder: {}", folder.display())).weak());
            }
        });
        if let Some(r) = &self.last {
            ui.label(format!(
                "epoch {}: D {:.3}, G {:.3}, D(real) {:.2}, D(fake) {:.2}, {:.1} s",
                r.epoch, r.d_loss, r.g_loss, r.d_real, r.d_fake, r.seconds
            ));
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
