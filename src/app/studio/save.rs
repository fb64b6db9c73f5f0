//! Saving the Latent view's pictures with the settings that made them.

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::io::png_meta::ImageSettings;
use crate::latent::interpolate::seeded_latent;
use crate::ui::commands::SaveKind;
use crate::ui::jobs::Purpose;
use crate::ui::latent_panel::{Endpoint, Origin};
use crate::worker::{SaveFormat, SaveTarget, WorkerRequest};

impl StudioApp {
    /// Saves the Latent view's image, grid, strip or animation: numbered in
    /// the output folder, or where a file dialog says.
    pub(super) fn save(&mut self, kind: SaveKind, dialog: bool) {
        let Some(model) = self.model_id() else { return };
        let p = &self.panel;
        let (latents, format, settings, stem) = match kind {
            SaveKind::Image => {
                let (method, seeds) = match &p.origin {
                    Origin::Seed(s) => ("seed".to_owned(), vec![*s]),
                    Origin::Edited => ("slider".to_owned(), vec![]),
                    Origin::Encoded(path) => (format!("encode {}", path.display()), vec![]),
                };
                let settings = ImageSettings {
                    model: model.clone(),
                    kind: "image".into(),
                    seeds,
                    method,
                    latents: vec![p.current_latent()],
                    truncation: p.truncation_in_use(),
                };
                (vec![p.current_latent()], SaveFormat::Png { columns: 1 }, settings, model.clone())
            }
            SaveKind::Grid => {
                let seeds: Vec<u64> = (0..16).map(|i| p.seed.wrapping_add(i)).collect();
                let latents: Vec<Vec<f32>> =
                    seeds.iter().map(|&s| p.effective(&seeded_latent(s, p.latent.len()))).collect();
                let settings = ImageSettings {
                    model: model.clone(),
                    kind: "grid".into(),
                    seeds,
                    method: "seed".into(),
                    latents: latents.clone(),
                    truncation: p.truncation_in_use(),
                };
                (latents, SaveFormat::Png { columns: 4 }, settings, format!("{model}-grid"))
            }
            SaveKind::Strip | SaveKind::Animation => {
                let latents = p.path_latents();
                let seeds = p.endpoints.iter().filter_map(|e: &Endpoint| e.seed).collect();
                let kind_name = if kind == SaveKind::Strip { "strip" } else { "animation" };
                let settings = ImageSettings {
                    model: model.clone(),
                    kind: kind_name.into(),
                    seeds,
                    method: p.method.name().into(),
                    latents: latents.clone(),
                    truncation: p.truncation_in_use(),
                };
                let format = if kind == SaveKind::Strip {
                    SaveFormat::Png { columns: latents.len() }
                } else {
                    SaveFormat::Gif { delay_ms: 80 }
                };
                (latents, format, settings, format!("{model}-{}", p.method.name()))
            }
        };
        let ext = if matches!(format, SaveFormat::Gif { .. }) { "gif" } else { "png" };
        let dir = self.settings.output_dir.clone();
        let mut request = WorkerRequest::Save {
            model,
            latents,
            settings,
            format,
            target: SaveTarget::Numbered { dir: dir.clone(), stem: stem.clone() },
            scale: self.settings.save_scale,
        };
        let label = format!("save {ext}");
        if !dialog {
            self.submit(request, Purpose::Save, label);
            return;
        }
        self.dialogs.open(move || {
            let path = rfd::FileDialog::new()
                .set_directory(dir)
                .set_file_name(format!("{stem}.{ext}"))
                .add_filter(ext, &[ext])
                .save_file()?;
            if let WorkerRequest::Save { target, .. } = &mut request {
                *target = SaveTarget::Exact(path);
            }
            Some(DialogOutcome::Save { request: Box::new(request), label })
        });
    }
}
