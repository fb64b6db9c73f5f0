//! The latent panel: sliders, the decoded image, the 2-D map, interpolation
//! between two endpoints (strip and animation) and saving. It talks to models
//! only through manifests and commands, so any latent model family fits.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{RichText, TextureHandle, TextureOptions, Vec2};

use super::latent_map::{MapPoints, latent_map_ui};
use super::scatter::ScatterPoint;
use super::theme;
use super::vae_tools_panel::VaeToolsPanel;
use crate::io::latent_map::LatentMap;
use crate::io::manifest::{Family, ModelManifest};
use crate::latent::interpolate::{Interpolation, interpolate, seeded_latent, truncate};
use crate::ui::commands::{SaveKind, Slot, UiCommand};

/// The loaded model as the panel sees it.
pub struct ModelView {
    /// What the model is.
    pub manifest: ModelManifest,
    /// Whether images can be encoded.
    pub can_encode: bool,
    /// Scatter of the encoded test set (2-D models).
    pub map: Option<MapPoints>,
    /// Named orthonormal directions (a GAN's principal directions).
    pub directions: Vec<Vec<f32>>,
}

impl ModelView {
    /// Whether latents are truncated before decoding (GANs).
    pub fn truncates(&self) -> bool {
        self.manifest.family == Family::Gan
    }
}

/// Where the current latent came from, for saved metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// Drawn from a seed.
    Seed(u64),
    /// Moved with sliders or the map.
    Edited,
    /// Encoded from an image file.
    Encoded(PathBuf),
}

/// An interpolation endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    /// Its latent.
    pub latent: Vec<f32>,
    /// Where it came from, shown to the user.
    pub label: String,
    /// Its seed, when it came from one.
    pub seed: Option<u64>,
}

/// What the panel shows besides its own state.
pub struct PanelContext<'a> {
    /// Installed models.
    pub models: &'a [ModelManifest],
    /// Whether the GPU scatter is available.
    pub gpu_scatter: bool,
    /// Time in seconds, for the animation.
    pub time: f64,
    /// Whether a decode of the strip is pending.
    pub strip_pending: bool,
}

/// All the panel's state.
pub struct LatentPanel {
    /// The open model, once loaded.
    pub model: Option<ModelView>,
    /// The current latent.
    pub latent: Vec<f32>,
    /// Its origin.
    pub origin: Origin,
    /// The seed shown next to "Randomise".
    pub seed: u64,
    /// Decoded current latent.
    pub image: Option<TextureHandle>,
    /// Interpolation endpoints A and B.
    pub endpoints: [Endpoint; 2],
    /// Interpolation method.
    pub method: Interpolation,
    /// Frames in the strip.
    pub frames: usize,
    /// Decoded strip.
    pub strip: Vec<TextureHandle>,
    /// Latents of the decoded strip.
    pub strip_latents: Vec<Vec<f32>>,
    /// Play the strip as a loop.
    pub animate: bool,
    /// Where dropped image files go, recorded while drawing: endpoint columns
    /// take drops for A and B, everything else for the current latent.
    pub drop_zones: Vec<(egui::Rect, Slot)>,
    /// Truncation ψ for GANs: decoded latents are ψ·z (1 leaves them, 0 is the mean image).
    pub truncation: f32,
    /// First seed of the sample grid.
    pub grid_seed: u64,
    /// The decoded grid, seeds `grid_seed..grid_seed + GRID_SIZE`.
    pub grid: Vec<TextureHandle>,
    /// Outliers and denoising, for VAEs.
    pub vae_tools: VaeToolsPanel,
}

/// Images in the latent panel's sample grid.
pub const GRID_SIZE: usize = 16;

impl LatentPanel {
    /// An empty panel with the given interpolation settings.
    pub fn new(method: Interpolation, frames: usize) -> Self {
        let empty = Endpoint { latent: Vec::new(), label: String::new(), seed: None };
        Self {
            model: None,
            latent: Vec::new(),
            origin: Origin::Seed(0),
            seed: 0,
            image: None,
            endpoints: [empty.clone(), empty],
            method,
            frames,
            strip: Vec::new(),
            strip_latents: Vec::new(),
            animate: true,
            drop_zones: Vec::new(),
            truncation: 1.0,
            grid_seed: 0,
            grid: Vec::new(),
            vae_tools: VaeToolsPanel::default(),
        }
    }

    /// The grid's latents as decoded.
    pub fn grid_latents(&self) -> Vec<Vec<f32>> {
        let dim = self.latent.len();
        (0..GRID_SIZE as u64).map(|i| self.effective(&seeded_latent(self.grid_seed.wrapping_add(i), dim))).collect()
    }

    /// Replaces the decoded grid.
    pub fn set_grid(&mut self, ctx: &egui::Context, images: &[image::RgbImage]) {
        self.grid = images
            .iter()
            .enumerate()
            .map(|(i, img)| ctx.load_texture(format!("latent-grid-{i}"), to_color_image(img), TextureOptions::NEAREST))
            .collect();
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Samples");
        ui.horizontal(|ui| {
            let label = ui.label("First seed");
            let mut seed = self.grid_seed;
            let drag = egui::DragValue::new(&mut seed).range(0..=u64::from(u32::MAX));
            let changed = ui.add(drag).labelled_by(label.id).changed();
            let new = ui.button("Sample grid").on_hover_text(format!("Decode {GRID_SIZE} seeds from a new first seed"));
            if new.clicked() {
                seed = fresh_seed(self.grid_seed);
            }
            if changed || seed != self.grid_seed || (new.clicked() && self.grid.is_empty()) {
                self.grid_seed = seed;
                out.push(UiCommand::DecodeGrid);
            }
        });
        let mut opened = None;
        egui::Grid::new("sample-grid").spacing([6.0, 6.0]).show(ui, |ui| {
            for (i, tex) in self.grid.iter().enumerate() {
                let seed = self.grid_seed.wrapping_add(i as u64);
                let clicked = ui
                    .vertical(|ui| {
                        let r = ui.add(
                            egui::Image::new(tex)
                                .fit_to_exact_size(Vec2::splat(theme::THUMB_SIDE))
                                .sense(egui::Sense::click()),
                        );
                        ui.label(RichText::new(format!("seed {seed}")).small());
                        r.on_hover_text("Open this seed in the sliders").clicked()
                    })
                    .inner;
                if clicked {
                    opened = Some(seed);
                }
                if i % 8 == 7 {
                    ui.end_row();
                }
            }
        });
        if let Some(seed) = opened {
            self.set_seed(seed, self.latent.len());
            out.push(UiCommand::DecodeCurrent);
        }
    }

    /// What is decoded for latent `z`: truncated by ψ for GANs, else `z`.
    pub fn effective(&self, z: &[f32]) -> Vec<f32> {
        match self.truncation_in_use() {
            Some(psi) => truncate(z, psi),
            None => z.to_vec(),
        }
    }

    /// ψ when the model truncates and ψ ≠ 1.
    pub fn truncation_in_use(&self) -> Option<f32> {
        let truncates = self.model.as_ref().is_some_and(ModelView::truncates);
        (truncates && self.truncation != 1.0).then_some(self.truncation)
    }

    /// The current latent as decoded.
    pub fn current_latent(&self) -> Vec<f32> {
        self.effective(&self.latent)
    }

    /// Shows a freshly loaded model: seed 0 as the current latent, seeds 1 and 2 as endpoints.
    pub fn set_model(
        &mut self,
        manifest: ModelManifest,
        can_encode: bool,
        map: Option<&LatentMap>,
        directions: Vec<Vec<f32>>,
    ) {
        let dim = manifest.latent_dim;
        // Rankings and denoised images belong to the previous model; the settings stay.
        self.vae_tools.ranking = None;
        self.vae_tools.denoised = None;
        let map = map.map(|m| MapPoints {
            points: Arc::new(
                m.points.iter().zip(&m.labels).map(|(p, l)| ScatterPoint { latent: *p, label: *l as u32 }).collect(),
            ),
            version: hash_id(&manifest.id),
        });
        self.model = Some(ModelView { manifest, can_encode, map, directions });
        self.set_seed(self.seed, dim);
        for (i, seed) in [1u64, 2].into_iter().enumerate() {
            self.endpoints[i] =
                Endpoint { latent: seeded_latent(seed, dim), label: format!("seed {seed}"), seed: Some(seed) };
        }
        self.image = None;
        self.strip.clear();
        self.strip_latents.clear();
        self.grid.clear();
    }

    fn set_seed(&mut self, seed: u64, dim: usize) {
        self.seed = seed;
        self.latent = seeded_latent(seed, dim);
        self.origin = Origin::Seed(seed);
    }

    /// The latents of the interpolation path for the current settings, as decoded.
    pub fn path_latents(&self) -> Vec<Vec<f32>> {
        self.raw_path().iter().map(|z| self.effective(z)).collect()
    }

    /// The path between the endpoints before truncation.
    fn raw_path(&self) -> Vec<Vec<f32>> {
        interpolate(&self.endpoints[0].latent, &self.endpoints[1].latent, self.frames.max(2), self.method)
    }

    /// Draws the panel and pushes what the user asked for into `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, out: &mut Vec<UiCommand>) {
        if self.model.is_none() {
            ui.centered_and_justified(|ui| {
                let text =
                    if ctx.models.is_empty() { "No models installed: see README.md" } else { "Loading model…" };
                ui.label(text);
            });
            return;
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(280.0);
                self.sliders_ui(ui, out);
            });
            // Spacing, not vertical separators: those grow to the full panel height.
            ui.add_space(theme::COLUMN_GAP);
            ui.vertical(|ui| self.image_ui(ui, out));
            if self.latent.len() == 2 {
                ui.add_space(theme::COLUMN_GAP);
                ui.vertical(|ui| self.map_ui(ui, ctx, out));
            }
        });
        ui.separator();
        self.interpolation_ui(ui, ctx, out);
        ui.separator();
        self.grid_ui(ui, out);
        if self.model.as_ref().is_some_and(|m| m.manifest.family == crate::io::manifest::Family::Vae) {
            ui.separator();
            self.vae_tools.ui(ui, out);
        }
    }

    fn sliders_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Latent");
        ui.horizontal(|ui| {
            let mut seed = self.seed;
            ui.label("Seed");
            let changed = ui
                .add(egui::DragValue::new(&mut seed).speed(1.0).range(0..=u64::from(u32::MAX)))
                .on_hover_text("The seed the latent is drawn from")
                .changed();
            if ui.button("Randomise").on_hover_text("Draw a latent from a new seed").clicked() {
                seed = fresh_seed(self.seed);
            }
            if changed || seed != self.seed {
                self.set_seed(seed, self.latent.len());
                out.push(UiCommand::DecodeCurrent);
            }
            if ui.button("Zero").on_hover_text("The centre of the latent space").clicked() {
                self.latent.iter_mut().for_each(|v| *v = 0.0);
                self.origin = Origin::Edited;
                out.push(UiCommand::DecodeCurrent);
            }
        });
        let r = theme::LATENT_RANGE;
        egui::ScrollArea::vertical().max_height(300.0).id_salt("sliders").show(ui, |ui| {
            for i in 0..self.latent.len() {
                let label = format!("z{}", i + 1);
                // Display-only formatting and clamping on edits only: `fixed_decimals`
                // and the default clamping would round or clip (so edit) the latent.
                let slider = egui::Slider::new(&mut self.latent[i], -r..=r)
                    .text(&label)
                    .clamping(egui::SliderClamping::Edits)
                    .custom_formatter(|v, _| format!("{v:.2}"));
                if ui.add(slider).changed() {
                    self.origin = Origin::Edited;
                    out.push(UiCommand::DecodeCurrent);
                }
            }
        });
        self.gan_ui(ui, out);
        let origin = match &self.origin {
            Origin::Seed(s) => format!("from seed {s}"),
            Origin::Edited => "edited".to_owned(),
            Origin::Encoded(p) => {
                format!("encoded from {}", p.file_name().map(|f| f.to_string_lossy()).unwrap_or_default())
            }
        };
        ui.label(RichText::new(origin).weak());
    }

    /// Truncation and principal directions, for models that have them.
    fn gan_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        let Some(model) = &self.model else { return };
        if model.truncates() {
            let psi = egui::Slider::new(&mut self.truncation, 0.0..=1.5).text("Truncation ψ");
            let hint = "Decode ψ·z: below 1 trades variety for typical images; 0 is the mean latent's image";
            if ui.add(psi).on_hover_text(hint).changed() {
                out.extend([UiCommand::DecodeCurrent, UiCommand::DecodeStrip, UiCommand::DecodeGrid]);
            }
        }
        if model.directions.is_empty() {
            return;
        }
        ui.label(RichText::new("Principal directions").strong())
            .on_hover_text("GANSpace directions: main axes of variation of the generator's first layer");
        let r = theme::LATENT_RANGE;
        for (k, u) in model.directions.iter().enumerate() {
            // The slider shows the latent's coordinate along u; moving it moves
            // the latent along u only (the directions are orthonormal).
            let before: f32 = self.latent.iter().zip(u).map(|(z, u)| z * u).sum();
            let mut value = before;
            let slider = egui::Slider::new(&mut value, -r..=r)
                .text(format!("direction {}", k + 1))
                .clamping(egui::SliderClamping::Edits)
                .custom_formatter(|v, _| format!("{v:.2}"));
            if ui.add(slider).changed() {
                for (z, u) in self.latent.iter_mut().zip(u) {
                    *z += (value - before) * u;
                }
                self.origin = Origin::Edited;
                out.push(UiCommand::DecodeCurrent);
            }
        }
    }

    fn image_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.heading("Image");
        let size = Vec2::splat(theme::IMAGE_SIDE);
        match &self.image {
            Some(tex) => {
                ui.add(egui::Image::new(tex).fit_to_exact_size(size))
                    .on_hover_text("The decoded latent; drop an image file to encode it");
            }
            None => {
                let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                ui.painter().rect_filled(rect, 4.0, theme::MAP_BACKGROUND);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "decoding…",
                    egui::FontId::default(),
                    ui.visuals().weak_text_color(),
                );
            }
        }
        let can_encode = self.model.as_ref().is_some_and(|m| m.can_encode);
        ui.horizontal(|ui| {
            let open = ui.add_enabled(can_encode, egui::Button::new("Encode image…"));
            let open = if can_encode {
                open.on_hover_text("Encode an image file (or drop one on the window)")
            } else {
                open.on_disabled_hover_text("This model has no encoder")
            };
            if open.clicked() {
                out.push(UiCommand::PickImage(Slot::Current));
            }
            if ui.button("Save image").on_hover_text("Save as PNG into the output folder").clicked() {
                out.push(UiCommand::Save { kind: SaveKind::Image, dialog: false });
            }
            if ui.button("Save as…").clicked() {
                out.push(UiCommand::Save { kind: SaveKind::Image, dialog: true });
            }
        });
        ui.horizontal(|ui| {
            let tip = format!("Save a 4x4 grid of seeds {}-{}", self.seed, self.seed.wrapping_add(15));
            if ui.button("Save grid").on_hover_text(tip).clicked() {
                out.push(UiCommand::Save { kind: SaveKind::Grid, dialog: false });
            }
        });
    }

    fn map_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, out: &mut Vec<UiCommand>) {
        ui.heading("Latent map");
        let path: Vec<[f32; 2]> = self.path_latents().iter().map(|z| [z[0], z[1]]).collect();
        let Some(model) = &self.model else { return };
        let current = [self.latent[0], self.latent[1]];
        if let Some(z) = latent_map_ui(ui, model.map.as_ref(), ctx.gpu_scatter, current, &path) {
            self.latent = z.to_vec();
            self.origin = Origin::Edited;
            out.push(UiCommand::DecodeCurrent);
        }
        if model.map.is_some() {
            ui.horizontal_wrapped(|ui| {
                ui.set_max_width(theme::MAP_SIDE);
                for (i, name) in model.manifest.classes.iter().enumerate().take(10) {
                    // A painted dot: the default fonts have no "●".
                    let (dot, _) = ui.allocate_exact_size(Vec2::splat(8.0), egui::Sense::hover());
                    ui.painter().circle_filled(dot.center(), 3.5, theme::CLASS_COLORS[i]);
                    ui.label(RichText::new(name).color(theme::CLASS_COLORS[i]).small());
                }
            });
        }
    }

    fn endpoint_ui(&mut self, ui: &mut egui::Ui, slot: usize, out: &mut Vec<UiCommand>) {
        let name = if slot == 0 { "A" } else { "B" };
        let can_encode = self.model.as_ref().is_some_and(|m| m.can_encode);
        ui.horizontal(|ui| {
            ui.label(RichText::new(name).strong());
            ui.label(&self.endpoints[slot].label).on_hover_text(format!("Drop an image here to encode it as {name}"));
        });
        ui.horizontal(|ui| {
            let dim = self.latent.len();
            if ui.button(format!("Random {name}")).clicked() {
                let seed = fresh_seed(self.endpoints[slot].seed.unwrap_or(slot as u64));
                self.endpoints[slot] =
                    Endpoint { latent: seeded_latent(seed, dim), label: format!("seed {seed}"), seed: Some(seed) };
                out.push(UiCommand::DecodeStrip);
            }
            if ui.button(format!("Current to {name}")).clicked() {
                let (label, seed) = match &self.origin {
                    Origin::Seed(s) => (format!("seed {s}"), Some(*s)),
                    _ => ("the current latent".to_owned(), None),
                };
                self.endpoints[slot] = Endpoint { latent: self.latent.clone(), label, seed };
                out.push(UiCommand::DecodeStrip);
            }
            let pick = ui.add_enabled(can_encode, egui::Button::new(format!("Image to {name}…")));
            if pick.on_disabled_hover_text("This model has no encoder").clicked() {
                out.push(UiCommand::PickImage(if slot == 0 { Slot::A } else { Slot::B }));
            }
        });
    }

    fn interpolation_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, out: &mut Vec<UiCommand>) {
        ui.heading("Interpolation");
        ui.horizontal_top(|ui| {
            self.drop_zones.clear();
            let a = ui.vertical(|ui| self.endpoint_ui(ui, 0, out)).response.rect;
            ui.add_space(16.0);
            let b = ui.vertical(|ui| self.endpoint_ui(ui, 1, out)).response.rect;
            self.drop_zones = vec![(a, Slot::A), (b, Slot::B)];
            ui.add_space(16.0);
            ui.vertical(|ui| {
                ui.horizontal(|ui| {
                    let before = (self.method, self.frames);
                    ui.radio_value(&mut self.method, Interpolation::Lerp, "lerp").on_hover_text("Straight line");
                    ui.radio_value(&mut self.method, Interpolation::Slerp, "slerp")
                        .on_hover_text("Great circle: keeps the norm typical of Gaussian latents");
                    ui.add(egui::Slider::new(&mut self.frames, 2..=32).text("Frames"));
                    if before != (self.method, self.frames) {
                        out.push(UiCommand::DecodeStrip);
                    }
                });
                ui.horizontal(|ui| {
                    ui.checkbox(&mut self.animate, "Animate");
                    if ui.button("Save strip").clicked() {
                        out.push(UiCommand::Save { kind: SaveKind::Strip, dialog: false });
                    }
                    if ui.button("Save GIF").clicked() {
                        out.push(UiCommand::Save { kind: SaveKind::Animation, dialog: false });
                    }
                    if ui.button("Save GIF as…").clicked() {
                        out.push(UiCommand::Save { kind: SaveKind::Animation, dialog: true });
                    }
                });
            });
        });
        ui.horizontal(|ui| {
            if self.animate && !self.strip.is_empty() {
                let n = self.strip.len();
                // Ping-pong so the loop has no jump.
                let tick = (ctx.time / theme::FRAME_SECONDS) as usize % (2 * n - 2).max(1);
                let i = if tick < n { tick } else { 2 * n - 2 - tick };
                ui.add(egui::Image::new(&self.strip[i]).fit_to_exact_size(Vec2::splat(2.0 * theme::THUMB_SIDE)))
                    .on_hover_text("The interpolation as a loop");
                ui.ctx().request_repaint_after(std::time::Duration::from_secs_f64(theme::FRAME_SECONDS));
            }
            egui::ScrollArea::horizontal().id_salt("strip").show(ui, |ui| {
                ui.horizontal(|ui| {
                    for (i, tex) in self.strip.iter().enumerate() {
                        let r = ui.add(
                            egui::Image::new(tex)
                                .fit_to_exact_size(Vec2::splat(theme::THUMB_SIDE))
                                .sense(egui::Sense::click()),
                        );
                        if r.on_hover_text("Click to make this frame the current latent").clicked() {
                            // The frame's latent before truncation (ψ applies on decoding).
                            if let Some(z) = self.raw_path().get(i).filter(|_| i < self.strip_latents.len()) {
                                self.latent = z.clone();
                                self.origin = Origin::Edited;
                                out.push(UiCommand::DecodeCurrent);
                            }
                        }
                    }
                    if ctx.strip_pending {
                        super::busy::busy(ui);
                    }
                });
            });
        });
    }

    /// Replaces the decoded image.
    pub fn set_image(&mut self, ctx: &egui::Context, image: &image::RgbImage) {
        self.image = Some(ctx.load_texture("latent-current", to_color_image(image), TextureOptions::NEAREST));
    }

    /// Replaces the decoded strip.
    pub fn set_strip(&mut self, ctx: &egui::Context, images: &[image::RgbImage], latents: Vec<Vec<f32>>) {
        self.strip = images
            .iter()
            .enumerate()
            .map(|(i, img)| ctx.load_texture(format!("latent-strip-{i}"), to_color_image(img), TextureOptions::NEAREST))
            .collect();
        self.strip_latents = latents;
    }
}

/// egui's image type from a decoded RGB image.
pub fn to_color_image(image: &image::RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw())
}

/// A new seed that differs from `previous`, from the clock.
pub fn fresh_seed(previous: u64) -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(1);
    let seed = (nanos as u64 ^ previous.wrapping_mul(6364136223846793005)) % 100_000;
    if seed == previous { seed + 1 } else { seed }
}

fn hash_id(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}
