//! The Train view's folder of images: how they are prepared, the preview
//! of exactly what the model will see (a grid of the first training images,
//! the counts, the classes) and every file left out with its reason.

use egui::{RichText, TextureOptions, Vec2};

use super::latent_panel::to_color_image;
use super::train_panel::TrainPanel;
use crate::io::image_folder::{Fit, FolderSpec, Skipped};
use crate::ui::commands::UiCommand;

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

impl TrainPanel {
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
    pub(super) fn folder_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
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
                    super::busy::busy(ui);
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
}
