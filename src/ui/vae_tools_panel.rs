//! The Latent view's section for what a VAE is for beyond sampling:
//! outliers (a folder's images ranked by how unusual the model finds them,
//! the most unusual shown with a per-pixel error heat map, the ranking
//! exported as JSON) and denoising (an image with added noise, encoded and
//! decoded, the noise on a slider).

use std::path::PathBuf;

use egui::{RichText, TextureHandle, TextureOptions, Vec2};

use super::latent_panel::to_color_image;
use crate::io::image_folder::Fit;
use crate::ui::commands::UiCommand;
use crate::worker::JobId;
use crate::worker::vae_tools::{DenoiseResult, OutlierRanking};

/// Side of an outlier's thumbnail and heat map.
const THUMB: f32 = 56.0;
/// Side of the denoising panels.
const PANEL: f32 = 140.0;

/// A ranked folder and the textures of its first rows.
pub struct RankingView {
    pub ranking: OutlierRanking,
    pictures: Vec<(TextureHandle, TextureHandle)>,
}

/// An image, noisy and denoised, as textures.
pub struct DenoiseView {
    pub result: DenoiseResult,
    textures: [TextureHandle; 3],
}

/// The section's state.
pub struct VaeToolsPanel {
    /// How a folder's images are fitted to the model's size.
    pub fit: Fit,
    /// The ranking in progress.
    pub ranking_job: Option<JobId>,
    /// The latest ranking.
    pub ranking: Option<RankingView>,
    /// The image being denoised.
    pub image: Option<PathBuf>,
    /// Standard deviation of the added noise, in pixel units (0–1).
    pub noise: f32,
    /// Seed of the noise.
    pub seed: u64,
    /// The latest denoising.
    pub denoised: Option<DenoiseView>,
}

impl Default for VaeToolsPanel {
    fn default() -> Self {
        Self { fit: Fit::Crop, ranking_job: None, ranking: None, image: None, noise: 0.5, seed: 0, denoised: None }
    }
}

impl VaeToolsPanel {
    /// A ranking arrived.
    pub fn set_ranking(&mut self, ctx: &egui::Context, ranking: OutlierRanking) {
        let texture =
            |name: String, img: &image::RgbImage| ctx.load_texture(name, to_color_image(img), TextureOptions::NEAREST);
        let pictures = ranking
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let (image, heat) = r.pictures.as_ref()?;
                Some((texture(format!("outlier-{i}"), image), texture(format!("outlier-heat-{i}"), heat)))
            })
            .collect();
        self.ranking = Some(RankingView { ranking, pictures });
    }

    /// A denoised image arrived.
    pub fn set_denoised(&mut self, ctx: &egui::Context, result: DenoiseResult) {
        let texture =
            |name: &str, img: &image::RgbImage| ctx.load_texture(name, to_color_image(img), TextureOptions::NEAREST);
        let textures = [
            texture("denoise-input", &result.input),
            texture("denoise-noisy", &result.noisy),
            texture("denoise-output", &result.denoised),
        ];
        self.denoised = Some(DenoiseView { result, textures });
    }

    /// Draws the section; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        egui::CollapsingHeader::new("Outliers and denoising").default_open(true).show(ui, |ui| {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.set_width(620.0);
                    self.outliers_ui(ui, out);
                });
                ui.add_space(super::theme::COLUMN_GAP);
                ui.vertical(|ui| self.denoise_ui(ui, out));
            });
        });
    }

    fn outliers_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.label(RichText::new("Outliers").strong());
        ui.label(
            RichText::new(
                "A folder's images ranked by their negative ELBO under this VAE: unusual ones reconstruct badly",
            )
            .weak(),
        );
        ui.horizontal(|ui| {
            let busy = self.ranking_job.is_some();
            if ui.add_enabled(!busy, egui::Button::new("Rank a folder…")).clicked() {
                out.push(UiCommand::RankOutliers(None));
            }
            for fit in [Fit::Crop, Fit::Pad, Fit::Stretch] {
                ui.radio_value(&mut self.fit, fit, fit.name());
            }
            if busy {
                super::busy::busy(ui);
            }
            let exportable = self.ranking.is_some();
            if ui.add_enabled(exportable, egui::Button::new("Export ranking…")).clicked() {
                out.push(UiCommand::ExportOutliers);
            }
        });
        let Some(view) = &self.ranking else { return };
        let r = &view.ranking;
        ui.label(format!(
            "{} images of {} ranked, {} files skipped; the most unusual first (nats per image)",
            r.rows.len(),
            r.folder.display(),
            r.skipped.len()
        ));
        egui::Grid::new("outliers").num_columns(4).striped(true).show(ui, |ui| {
            for (rank, (row, (image, heat))) in r.rows.iter().zip(&view.pictures).enumerate() {
                ui.label(format!("{}", rank + 1));
                ui.add(egui::Image::new(image).fit_to_exact_size(Vec2::splat(THUMB)))
                    .on_hover_text(row.path.display().to_string());
                ui.add(egui::Image::new(heat).fit_to_exact_size(Vec2::splat(THUMB)))
                    .on_hover_text("Where it reconstructs badly: |x − x̂| per pixel, bright is large");
                let name = row.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
                ui.label(format!("{:.1} (recon {:.1}, KL {:.1})\n{name}", row.neg_elbo, row.recon, row.kl));
                ui.end_row();
            }
        });
    }

    fn denoise_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.label(RichText::new("Denoising").strong());
        ui.label(RichText::new("Noise added, then encoded and decoded: the decoder draws only what it learned").weak());
        ui.horizontal(|ui| {
            if ui.button("Choose an image…").clicked() {
                out.push(UiCommand::DenoiseImage(None));
            }
            let label = ui.label("Noise");
            let slider = ui.add(egui::Slider::new(&mut self.noise, 0.0..=1.0).step_by(0.01)).labelled_by(label.id);
            let label = ui.label("Seed");
            let seed =
                ui.add(egui::DragValue::new(&mut self.seed).range(0..=u64::from(u32::MAX))).labelled_by(label.id);
            if (slider.changed() || seed.changed()) && self.image.is_some() {
                out.push(UiCommand::DenoiseAgain);
            }
        });
        let Some(view) = &self.denoised else {
            if let Some(image) = &self.image {
                ui.label(format!("denoising {}…", image.display()));
            }
            return;
        };
        ui.horizontal(|ui| {
            for (texture, caption) in view.textures.iter().zip(["input", "with noise", "denoised"]) {
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(texture).fit_to_exact_size(Vec2::splat(PANEL)));
                    ui.label(caption);
                });
            }
        });
        let (noisy, denoised) = view.result.errors;
        ui.label(format!("mean squared error to the input: {noisy:.4} with noise, {denoised:.4} denoised"));
    }
}
