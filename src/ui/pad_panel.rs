//! The Latent view for diffusion models: the latent pad (prompts and seeds
//! at points of a square; drag the cursor and the picture morphs), concept
//! sliders, and the sampling settings of the live render. Every change asks
//! for a render; the app keeps one in flight and renders the newest state next.

use std::time::Instant;

use egui::{Color32, Pos2, RichText, Sense, Stroke, TextureHandle, Vec2};

use crate::io::image_record::ImageRecord;
use crate::io::manifest::ModelManifest;
use crate::spec::image::{ImageRequest, SamplerKind};
use crate::spec::latency::ChangeLatency;
use crate::spec::latent_control::{ConceptSlider, LatentRecipe, MAX_POINTS, NOISE_DIRECTIONS, PadPoint, PadRecipe};
use crate::spec::library::{ItemKind, LibraryItem};
use crate::ui::commands::UiCommand;
use crate::ui::travel_panel::TravelPanel;
use crate::worker::{ImageModelRef, JobId};

/// Side of the pad on screen, in points.
const PAD_SIDE: f32 = 260.0;
/// A press this close to a point (in points) drags the point, not the cursor.
const GRAB: f32 = 10.0;

/// The pad's state.
pub struct PadPanel {
    pub model: Option<ImageModelRef>,
    pub pad: PadRecipe,
    pub concepts: Vec<ConceptSlider>,
    /// Offsets along the fixed noise directions, in standard deviations.
    pub noise_directions: Vec<f64>,
    pub negative: String,
    /// Steps of the live render (few, so a drag keeps up).
    pub steps: usize,
    pub guidance: f64,
    /// The latest render, its record and how long it took.
    pub image: Option<(TextureHandle, ImageRecord, f64)>,
    /// A one-step preview of the render in flight (Stable Diffusion models) and its time.
    pub preview: Option<(TextureHandle, f64)>,
    /// The render being computed, whether its preview arrived, and whether
    /// the state changed since it was asked for.
    pub in_flight: Option<JobId>,
    pub previewed: bool,
    pub stale: bool,
    /// When the render in flight was asked for, and how long changes take to show.
    pub asked_at: Option<Instant>,
    pub latency: ChangeLatency,
    /// Keyframes through the pad's prompts, rendered into an animation.
    pub travel: TravelPanel,
    /// Which point a drag holds (else the cursor).
    dragging: Option<usize>,
    /// The state last asked for: any difference asks again (a drag, a
    /// typed prompt, a restored PNG, a new model alike).
    asked: Option<(LatentRecipe, ImageRequest, Option<ImageModelRef>)>,
}

impl Default for PadPanel {
    fn default() -> Self {
        Self {
            model: None,
            pad: PadRecipe::corners([
                ("red heart".into(), 1),
                ("blue star".into(), 2),
                ("green tree".into(), 3),
                ("yellow sun".into(), 4),
            ]),
            concepts: Vec::new(),
            noise_directions: vec![0.0; NOISE_DIRECTIONS],
            negative: String::new(),
            steps: 6,
            guidance: 4.0,
            image: None,
            preview: None,
            in_flight: None,
            previewed: false,
            stale: false,
            asked_at: None,
            latency: ChangeLatency::default(),
            travel: TravelPanel::default(),
            dragging: None,
            asked: None,
        }
    }
}

/// What the pad panel reads from the app.
pub struct PadPanelContext<'a> {
    /// Installed diffusion models.
    pub models: &'a [ModelManifest],
    /// The model library (its checkpoints are offered too).
    pub library: &'a [LibraryItem],
}

impl PadPanel {
    /// The sampling settings of a render (prompt and seed come from the pad).
    pub fn base(&self, side: usize) -> ImageRequest {
        ImageRequest {
            negative: self.negative.clone(),
            steps: self.steps,
            sampler: SamplerKind::Ddim,
            guidance: self.guidance,
            width: side,
            height: side,
            ..ImageRequest::new("", 0)
        }
    }

    /// The recipe of the current state.
    pub fn recipe(&self) -> LatentRecipe {
        LatentRecipe {
            pad: Some(self.pad.clone()),
            concepts: self.concepts.clone(),
            travel: None,
            // Directions at 0 are not recorded: an image without them is an ordinary pad image.
            noise_directions: if self.noise_directions.iter().all(|&v| v == 0.0) {
                Vec::new()
            } else {
                self.noise_directions.clone()
            },
        }
    }

    /// Takes over the settings of a pad image or a travel (a dropped file):
    /// the pad, or the travel's keyframes; sliders and sampling either way.
    pub fn restore(&mut self, record: &ImageRecord) -> bool {
        let Some(latent) = &record.latent else { return false };
        match (&latent.pad, &latent.travel) {
            (Some(pad), _) => {
                self.pad = pad.clone();
                let mut directions = latent.noise_directions.clone();
                directions.resize(NOISE_DIRECTIONS, 0.0);
                self.noise_directions = directions;
                self.steps = record.request.steps;
            }
            (None, Some(travel)) => {
                self.travel.keyframes = travel.keyframes.clone();
                self.travel.frames = travel.frames;
                self.travel.steps = record.request.steps;
            }
            (None, None) => return false,
        }
        self.concepts = latent.concepts.clone();
        self.negative = record.request.negative.clone();
        self.guidance = record.request.guidance;
        true
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &PadPanelContext, out: &mut Vec<UiCommand>) {
        self.model_row(ui, ctx, out);
        if self.model.is_none() {
            ui.label("Install or train a diffusion model to explore its latent space here.");
            return;
        }
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| self.pad_widget(ui));
            ui.vertical(|ui| self.result_ui(ui, out));
        });
        ui.separator();
        self.points_ui(ui);
        ui.separator();
        self.concepts_ui(ui);
        ui.separator();
        ui.horizontal(|ui| {
            ui.label(RichText::new("Noise directions").strong())
                .on_hover_text("Move the starting noise along fixed orthonormal directions (standard deviations)");
            for value in &mut self.noise_directions {
                ui.add(egui::Slider::new(value, -8.0..=8.0).show_value(false));
            }
            if ui.button("Reset").clicked() {
                self.noise_directions.iter_mut().for_each(|v| *v = 0.0);
            }
        });
        ui.separator();
        ui.horizontal(|ui| {
            ui.label("Negative prompt");
            ui.text_edit_singleline(&mut self.negative);
            ui.label("Live steps (DDIM)");
            ui.add(egui::DragValue::new(&mut self.steps).range(1..=50));
            ui.label("CFG");
            ui.add(egui::DragValue::new(&mut self.guidance).range(0.0..=20.0).speed(0.1));
        });
        ui.separator();
        self.travel.ui(ui, &self.pad, &self.concepts, out);
        let state = (self.recipe(), self.base(0), self.model.clone());
        if self.asked.as_ref() != Some(&state) {
            self.asked = Some(state);
            self.latency.changed(Instant::now());
            out.push(UiCommand::RenderPad { save: false });
        }
    }

    fn model_row(&mut self, ui: &mut egui::Ui, ctx: &PadPanelContext, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            let shown = self.model.as_ref().map_or("choose…".to_owned(), ToString::to_string);
            egui::ComboBox::from_label("Diffusion model").selected_text(shown).show_ui(ui, |ui| {
                for m in ctx.models {
                    let model = ImageModelRef::Id(m.id.clone());
                    if ui.selectable_label(self.model.as_ref() == Some(&model), &m.id).clicked() {
                        out.push(UiCommand::SelectPadModel(model));
                    }
                }
                for item in ctx.library.iter().filter(|i| matches!(i.kind, ItemKind::Checkpoint { .. })) {
                    let model = ImageModelRef::File { file: item.path.clone(), vae: None };
                    if ui.selectable_label(self.model.as_ref() == Some(&model), &item.name).clicked() {
                        out.push(UiCommand::SelectPadModel(model));
                    }
                }
            });
        });
    }

    /// The square: points as labelled dots, the cursor as a cross. Dragging
    /// near a point moves it; anywhere else moves the cursor.
    fn pad_widget(&mut self, ui: &mut egui::Ui) {
        let (response, painter) = ui.allocate_painter(Vec2::splat(PAD_SIDE), Sense::click_and_drag());
        // Points on the edges stay inside the frame, labels and all.
        let (frame, rect) = (response.rect, response.rect.shrink(16.0));
        let to_screen = |(x, y): (f64, f64)| rect.min + Vec2::new(x as f32, y as f32) * rect.size();
        let to_pad = |p: Pos2| {
            let v = (p - rect.min) / rect.size();
            (f64::from(v.x.clamp(0.0, 1.0)), f64::from(v.y.clamp(0.0, 1.0)))
        };
        if response.drag_started()
            && let Some(p) = response.interact_pointer_pos()
        {
            self.dragging = self.pad.points.iter().position(|pt| to_screen((pt.x, pt.y)).distance(p) <= GRAB);
        }
        if (response.dragged() || response.clicked())
            && let Some(p) = response.interact_pointer_pos()
        {
            match self.dragging.and_then(|i| self.pad.points.get_mut(i)) {
                Some(point) => (point.x, point.y) = to_pad(p),
                None => self.pad.at = to_pad(p),
            }
        }
        if response.drag_stopped() {
            self.dragging = None;
        }
        painter.rect_filled(frame, 4.0, ui.visuals().extreme_bg_color);
        painter.rect_stroke(frame, 4.0, Stroke::new(1.0, ui.visuals().weak_text_color()), egui::StrokeKind::Inside);
        let weights = self.pad.weights();
        for (point, w) in self.pad.points.iter().zip(&weights) {
            let at = to_screen((point.x, point.y));
            let radius = 4.0 + 8.0 * *w as f32;
            painter.circle_filled(at, radius, Color32::from_rgb(90, 160, 255));
            let label: String = point.prompt.chars().take(18).collect();
            let anchor = if point.x > 0.5 { egui::Align2::RIGHT_CENTER } else { egui::Align2::LEFT_CENTER };
            let offset = Vec2::new(if point.x > 0.5 { -10.0 } else { 10.0 }, if point.y > 0.5 { -10.0 } else { 10.0 });
            painter.text(at + offset, anchor, label, egui::FontId::proportional(12.0), ui.visuals().text_color());
        }
        let cursor = to_screen(self.pad.at);
        let stroke = Stroke::new(2.0, Color32::from_rgb(255, 200, 80));
        painter.line_segment([cursor - Vec2::X * 8.0, cursor + Vec2::X * 8.0], stroke);
        painter.line_segment([cursor - Vec2::Y * 8.0, cursor + Vec2::Y * 8.0], stroke);
        ui.label(RichText::new(format!("cursor {:.2}, {:.2}", self.pad.at.0, self.pad.at.1)).small());
    }

    fn result_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        if let Some((texture, millis)) = self.preview.as_ref().filter(|_| self.in_flight.is_some()) {
            ui.add(egui::Image::new(texture).fit_to_exact_size(Vec2::splat(PAD_SIDE)));
            ui.label(RichText::new(format!("preview in {millis:.0} ms (one step, tiny decoder); refining…")).small());
            super::busy::busy(ui);
            return;
        }
        match &self.image {
            Some((texture, record, millis)) => {
                ui.add(egui::Image::new(texture).fit_to_exact_size(Vec2::splat(PAD_SIDE)));
                ui.label(
                    RichText::new(format!(
                        "{:.0} ms · lead: {} (seed {})",
                        millis, record.request.prompt, record.request.seed
                    ))
                    .small(),
                );
                if let Some((p50, p95, n)) = self.latency.summary() {
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                    let text = format!("change to screen: p50 {:.0} ms, p95 {:.0} ms ({n} changes)", ms(p50), ms(p95));
                    ui.label(RichText::new(text).small().weak())
                        .on_hover_text("from each change of the pad to the first image on screen that includes it");
                }
            }
            None => {
                let (rect, _) = ui.allocate_exact_size(Vec2::splat(PAD_SIDE), Sense::hover());
                ui.painter().rect_filled(rect, 4.0, ui.visuals().faint_bg_color);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    "rendering…",
                    egui::FontId::proportional(14.0),
                    ui.visuals().weak_text_color(),
                );
            }
        }
        ui.horizontal(|ui| {
            if ui.add_enabled(self.image.is_some(), egui::Button::new("Save image")).clicked() {
                out.push(UiCommand::RenderPad { save: true });
            }
            if self.in_flight.is_some() {
                super::busy::busy(ui);
            }
        });
    }

    fn points_ui(&mut self, ui: &mut egui::Ui) {
        ui.label(RichText::new("Points (prompt, seed)").strong());
        let mut remove = None;
        let count = self.pad.points.len();
        egui::Grid::new("pad-points").num_columns(3).show(ui, |ui| {
            for (i, point) in self.pad.points.iter_mut().enumerate() {
                ui.add_sized([240.0, 20.0], egui::TextEdit::singleline(&mut point.prompt));
                ui.add(egui::DragValue::new(&mut point.seed).prefix("seed "));
                if ui.add_enabled(count > 1, egui::Button::new("x")).on_hover_text("remove this point").clicked() {
                    remove = Some(i);
                }
                ui.end_row();
            }
        });
        if let Some(i) = remove {
            self.pad.points.remove(i);
        }
        if ui.add_enabled(count < MAX_POINTS, egui::Button::new("Add point")).clicked() {
            let seed = self.pad.points.iter().map(|p| p.seed).max().unwrap_or(0) + 1;
            let (x, y) = self.pad.at;
            self.pad.points.push(PadPoint { prompt: "a cat".into(), seed, x, y });
        }
    }

    fn concepts_ui(&mut self, ui: &mut egui::Ui) {
        ui.label(RichText::new("Concept sliders").strong());
        let mut remove = None;
        for (i, slider) in self.concepts.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.add_sized([110.0, 20.0], egui::TextEdit::singleline(&mut slider.negative));
                let range = slider.range.max(0.1);
                ui.add(egui::Slider::new(&mut slider.value, -range..=range));
                ui.add_sized([110.0, 20.0], egui::TextEdit::singleline(&mut slider.positive));
                ui.add(egui::DragValue::new(&mut slider.range).range(0.1..=10.0).speed(0.1).prefix("range "));
                if ui.button("x").clicked() {
                    remove = Some(i);
                }
            });
        }
        if let Some(i) = remove {
            self.concepts.remove(i);
        }
        if ui.button("Add concept slider").clicked() {
            self.concepts.push(ConceptSlider::new("happy", "sad", 0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::latent_control::Keyframe;

    #[test]
    fn a_dropped_pad_image_restores_the_pad() {
        let mut panel = PadPanel::default();
        let mut moved = PadPanel::default();
        moved.pad.at = (0.2, 0.9);
        moved.concepts.push(ConceptSlider::new("day", "night", 0.4));
        let record = ImageRecord {
            request: ImageRequest { steps: 9, ..moved.base(32) },
            model: "emoji-ldm".into(),
            init_image: None,
            noise_origin: None,
            model_hash: None,
            lora_hashes: Vec::new(),
            latent: Some(moved.recipe()),
            served: None,
        };
        assert!(panel.restore(&record));
        assert_eq!((panel.pad.at, panel.concepts.len(), panel.steps), ((0.2, 0.9), 1, 9));
        let plain = ImageRecord { latent: None, ..record.clone() };
        assert!(!panel.restore(&plain), "an ordinary image has no pad");

        let mut travel = TravelPanel::default();
        travel.add_lead_point(&moved.pad, &moved.concepts);
        travel.keyframes.push(Keyframe { prompt: "moon".into(), seed: 8, concepts: vec![-0.5] });
        travel.frames = 7;
        let plan = travel.plan(&moved.concepts);
        let latent =
            LatentRecipe { travel: Some(plan.frame(0)), concepts: plan.concepts.clone(), ..LatentRecipe::default() };
        let file = ImageRecord { latent: Some(latent), ..record };
        let mut panel = PadPanel::default();
        assert!(panel.restore(&file), "a travel fills the travel editor");
        assert_eq!((panel.travel.keyframes.len(), panel.travel.frames, panel.travel.steps), (2, 7, 9));
        let first = &panel.travel.keyframes[0];
        assert_eq!((first.prompt.as_str(), first.seed, first.concepts.as_slice()), ("green tree", 3, &[0.4][..]));
        assert_eq!(panel.pad, PadPanel::default().pad, "the pad itself is left as it was");
    }
}
