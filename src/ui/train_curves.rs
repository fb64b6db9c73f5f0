//! What the Train view shows of a run in progress, for any family: each
//! named loss as a curve over the training steps, each epoch's metrics as
//! points where the epoch ended, the latest sample grid, and how long the
//! rest will take.

use std::collections::BTreeMap;
use std::path::PathBuf;

use egui::{TextureHandle, TextureOptions, Vec2};
use egui_plot::{Legend, Line, Plot, Points};

use super::latent_panel::to_color_image;
use super::theme;
use crate::spec::train::{EpochSummary, TrainTick};

/// One run as the Train view has seen it.
#[derive(Default)]
pub struct RunCurves {
    /// Where the run writes.
    pub folder: Option<PathBuf>,
    /// The stage being trained ("autoencoder", "U-Net"; empty for one-stage runs).
    pub stage: String,
    /// Epochs planned in the current stage.
    pub planned: usize,
    /// Epochs done before this session of the run (a resumed run's).
    pub done_before: usize,
    /// (step, mean loss) per batch event, by curve name ("D", "loss", "U-Net loss"…).
    pub curves: BTreeMap<String, Vec<[f64; 2]>>,
    /// (step, value) per epoch, by metric name.
    pub epoch_points: BTreeMap<String, Vec<[f64; 2]>>,
    /// Steps seen so far (the x axis).
    pub steps: f64,
    /// Epoch, batch and batches of the latest step.
    pub position: (usize, usize, usize),
    /// The latest epoch's summary.
    pub last: Option<EpochSummary>,
    /// Seconds each epoch of this stage took in this session (the time-left estimate).
    pub epoch_seconds: Vec<f64>,
    /// The latest sample grid.
    pub grid: Option<TextureHandle>,
    /// The latest text sample (the character GPT's).
    pub text: Option<String>,
}

impl RunCurves {
    /// A curve's points (tests, and the legend).
    pub fn curve(&self, name: &str) -> &[[f64; 2]] {
        self.curves.get(name).map_or(&[], Vec::as_slice)
    }

    fn key(&self, name: &str) -> String {
        if self.stage.is_empty() { name.to_owned() } else { format!("{} {name}", self.stage) }
    }

    /// A stage began in `folder` with `done` of `planned` epochs behind it.
    pub fn stage_started(&mut self, folder: PathBuf, stage: String, done: usize, planned: usize) {
        self.folder = Some(folder);
        self.stage = stage;
        (self.done_before, self.planned) = (done, planned);
        self.epoch_seconds.clear();
        self.position = (done, 0, 0);
    }

    /// Training steps' losses.
    pub fn push_batch(&mut self, tick: &TrainTick) {
        let (_, last_batch, _) = self.position;
        let same_epoch = self.position.0 == tick.epoch && tick.batch > last_batch;
        self.steps += if same_epoch { (tick.batch - last_batch) as f64 } else { tick.batch as f64 };
        for (name, value) in &tick.values {
            let key = self.key(name);
            self.curves.entry(key).or_default().push([self.steps, *value]);
        }
        self.position = (tick.epoch, tick.batch, tick.batches);
    }

    /// An epoch finished.
    pub fn push_epoch(
        &mut self,
        ctx: &egui::Context,
        summary: EpochSummary,
        grid: Option<&image::RgbImage>,
        text: Option<String>,
    ) {
        if text.is_some() {
            self.text = text;
        }
        if let Some(grid) = grid {
            self.grid = Some(ctx.load_texture("train-grid", to_color_image(grid), TextureOptions::NEAREST));
        }
        for (name, value) in &summary.values {
            let key = format!("{} (epoch)", self.key(name));
            self.epoch_points.entry(key).or_default().push([self.steps, *value]);
        }
        self.epoch_seconds.push(summary.seconds);
        self.last = Some(summary);
    }

    /// Time left in the current stage: the last few epochs' mean time for
    /// each epoch still to come, less what the current epoch has done.
    pub fn seconds_left(&self) -> Option<f64> {
        let recent = &self.epoch_seconds[self.epoch_seconds.len().saturating_sub(5)..];
        if recent.is_empty() {
            return None;
        }
        let mean = recent.iter().sum::<f64>() / recent.len() as f64;
        let (epoch, batch, batches) = self.position;
        let done_in_epoch = if batches > 0 && batch < batches { batch as f64 / batches as f64 } else { 0.0 };
        let finished = if batch < batches { epoch.saturating_sub(1) } else { epoch };
        let remaining = self.planned.saturating_sub(finished) as f64 - done_in_epoch;
        Some(remaining.max(0.0) * mean)
    }

    /// The losses over the steps, and the sample grid beside them.
    pub fn ui(&self, ui: &mut egui::Ui) {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(560.0);
                Plot::new("train-losses")
                    .height(300.0)
                    .legend(Legend::default())
                    .x_axis_label("step")
                    .y_axis_label("loss")
                    .show(ui, |plot| {
                        for (i, (name, points)) in self.curves.iter().enumerate() {
                            plot.line(Line::new(name.clone(), points.clone()).color(theme::series(i)));
                        }
                        for (i, (name, points)) in self.epoch_points.iter().enumerate() {
                            let colour = theme::series(self.curves.len() + i);
                            plot.points(Points::new(name.clone(), points.clone()).radius(3.0).color(colour));
                        }
                    });
            });
            ui.add_space(theme::COLUMN_GAP);
            ui.vertical(|ui| {
                if let Some(text) = &self.text {
                    ui.label("Sample after the latest evaluation (temperature 0.8, seed 0)");
                    egui::ScrollArea::vertical().id_salt("train-text-sample").max_height(300.0).show(ui, |ui| {
                        ui.set_width(300.0);
                        ui.label(egui::RichText::new(text).monospace());
                    });
                    return;
                }
                ui.label("Samples after the latest epoch");
                match &self.grid {
                    Some(tex) => {
                        ui.add(egui::Image::new(tex).fit_to_exact_size(Vec2::splat(300.0)))
                            .on_hover_text("The same seeds after every epoch");
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

    fn tick(epoch: usize, batch: usize, batches: usize, loss: f64) -> TrainTick {
        TrainTick { epoch, batch, batches, values: vec![("loss", loss)] }
    }

    #[test]
    fn steps_count_batches_across_epochs_and_stages() {
        let mut run = RunCurves::default();
        run.stage_started("run".into(), "autoencoder".into(), 0, 2);
        run.push_batch(&tick(1, 3, 10, 1.0)); // three batches in one event
        run.push_batch(&tick(1, 10, 10, 0.5));
        run.push_batch(&tick(2, 4, 10, 0.4));
        assert_eq!(run.curve("autoencoder loss"), &[[3.0, 1.0], [10.0, 0.5], [14.0, 0.4]]);
        run.stage_started("run".into(), "U-Net".into(), 0, 5);
        run.push_batch(&tick(1, 2, 8, 0.9));
        assert_eq!(run.curve("U-Net loss"), &[[16.0, 0.9]]);
    }

    #[test]
    fn time_left_is_the_recent_epochs_mean_times_what_remains() {
        let mut run = RunCurves { planned: 10, ..RunCurves::default() };
        assert_eq!(run.seconds_left(), None, "no epoch finished yet");
        run.epoch_seconds = vec![100.0, 2.0, 4.0, 2.0, 4.0, 2.0, 6.0]; // the first, slow one has left the window
        run.position = (8, 5, 10); // half of epoch 8
        assert_eq!(run.seconds_left(), Some(2.5 * 3.6));
        run.position = (8, 10, 10); // epoch 8 done
        assert_eq!(run.seconds_left(), Some(2.0 * 3.6));
    }
}
