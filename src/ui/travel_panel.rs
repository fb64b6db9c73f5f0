//! The Latent view's travel editor: keyframes of (prompt, seed, concept
//! values), taken from the pad or typed, rendered frame by frame on the
//! image thread into a GIF or APNG; the frames play here as they arrive.

use std::path::PathBuf;

use egui::{RichText, TextureHandle, Vec2};

use crate::spec::latent_control::{AnimationFormat, ConceptSlider, Keyframe, MAX_TRAVEL_FRAMES, PadRecipe, TravelPlan};
use crate::ui::commands::UiCommand;
use crate::worker::JobId;

/// Side of the travel's playback on screen, in points.
const PLAYBACK_SIDE: f32 = 160.0;

/// The travel's state.
pub struct TravelPanel {
    pub keyframes: Vec<Keyframe>,
    pub frames: usize,
    pub fps: f64,
    /// Steps of every frame (DDIM): more than the pad's live render.
    pub steps: usize,
    pub format: AnimationFormat,
    /// The travel being rendered.
    pub job: Option<JobId>,
    /// The frames rendered so far, in order (of the running or the last travel).
    pub rendered: Vec<TextureHandle>,
    /// Where the last travel was written.
    pub saved: Option<PathBuf>,
}

impl Default for TravelPanel {
    fn default() -> Self {
        Self {
            keyframes: Vec::new(),
            frames: 24,
            fps: 12.0,
            steps: 20,
            format: AnimationFormat::Gif,
            job: None,
            rendered: Vec::new(),
            saved: None,
        }
    }
}

impl TravelPanel {
    /// The travel to render with the pad's concept sliders.
    pub fn plan(&self, concepts: &[ConceptSlider]) -> TravelPlan {
        TravelPlan {
            keyframes: self.keyframes.clone(),
            concepts: concepts.to_vec(),
            frames: self.frames,
            fps: self.fps,
        }
    }

    /// Adds the pad's lead point (nearest the cursor) with the sliders' current values.
    pub fn add_lead_point(&mut self, pad: &PadRecipe, concepts: &[ConceptSlider]) {
        let lead = pad.lead();
        let values = concepts.iter().map(|c| c.value).collect();
        self.keyframes.push(Keyframe { prompt: lead.prompt.clone(), seed: lead.seed, concepts: values });
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, pad: &PadRecipe, concepts: &[ConceptSlider], out: &mut Vec<UiCommand>) {
        ui.label(RichText::new("Travel").strong())
            .on_hover_text("An animation through keyframes: slerped noise, blended prompts, a deterministic sampler");
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| self.editor(ui, pad, concepts, out));
            self.playback(ui);
        });
    }

    fn editor(&mut self, ui: &mut egui::Ui, pad: &PadRecipe, concepts: &[ConceptSlider], out: &mut Vec<UiCommand>) {
        let mut remove = None;
        egui::Grid::new("travel-keyframes").num_columns(4).show(ui, |ui| {
            for (i, key) in self.keyframes.iter_mut().enumerate() {
                ui.label(format!("{}.", i + 1));
                ui.add_sized([220.0, 20.0], egui::TextEdit::singleline(&mut key.prompt));
                ui.add(egui::DragValue::new(&mut key.seed).prefix("seed "));
                if ui.button("x").on_hover_text("remove this keyframe").clicked() {
                    remove = Some(i);
                }
                ui.end_row();
            }
        });
        if let Some(i) = remove {
            self.keyframes.remove(i);
        }
        ui.horizontal(|ui| {
            if ui
                .button("Add keyframe from the pad")
                .on_hover_text("the point nearest the cursor, with the concept sliders' values")
                .clicked()
            {
                self.add_lead_point(pad, concepts);
            }
        });
        ui.horizontal(|ui| {
            ui.label("Frames");
            ui.add(egui::DragValue::new(&mut self.frames).range(2..=MAX_TRAVEL_FRAMES));
            ui.label("FPS");
            ui.add(egui::DragValue::new(&mut self.fps).range(1.0..=50.0).speed(0.5));
            ui.label("Steps (DDIM)");
            ui.add(egui::DragValue::new(&mut self.steps).range(1..=150));
            egui::ComboBox::from_label("Format").selected_text(format_name(self.format)).show_ui(ui, |ui| {
                for format in [AnimationFormat::Gif, AnimationFormat::Apng] {
                    ui.selectable_value(&mut self.format, format, format_name(format));
                }
            });
        });
        let problem = self.plan(concepts).validate().err();
        ui.horizontal(|ui| match self.job {
            Some(job) => {
                super::busy::busy(ui);
                ui.label(format!("frame {} of {}", self.rendered.len(), self.frames));
                if ui.button("Stop travel").clicked() {
                    out.push(UiCommand::Cancel(job));
                }
            }
            None => {
                let button = ui.add_enabled(problem.is_none(), egui::Button::new("Make travel"));
                if button.clicked() {
                    out.push(UiCommand::MakeTravel);
                }
                if let Some(problem) = &problem {
                    ui.label(RichText::new(problem).small().weak());
                }
            }
        });
        if let Some(path) = &self.saved {
            ui.label(RichText::new(format!("saved {}", path.display())).small());
        }
    }

    /// The rendered frames, looping at the travel's pace.
    fn playback(&self, ui: &mut egui::Ui) {
        if self.rendered.is_empty() {
            return;
        }
        let period = 1.0 / self.fps.max(1.0);
        let index = (ui.input(|i| i.time) / period) as usize % self.rendered.len();
        ui.add(egui::Image::new(&self.rendered[index]).fit_to_exact_size(Vec2::splat(PLAYBACK_SIDE)));
        ui.ctx().request_repaint_after(std::time::Duration::from_secs_f64(period));
    }
}

fn format_name(format: AnimationFormat) -> &'static str {
    match format {
        AnimationFormat::Gif => "GIF",
        AnimationFormat::Apng => "APNG",
    }
}
