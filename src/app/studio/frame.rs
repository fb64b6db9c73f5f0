//! One frame of the studio: events in, dropped files, the top bar, the
//! current view, then the panels' commands applied.

use std::path::PathBuf;

use super::StudioApp;
use crate::spec::backend::BackendKind;
use crate::ui::about::about_window;
use crate::ui::backends_view::{remote_loras, remote_models};
use crate::ui::commands::{Slot, Tab, UiCommand};
use crate::ui::image_panel::ImagePanelContext;
use crate::ui::jobs::Purpose;
use crate::ui::latent_panel::PanelContext;
use crate::ui::models_view::ModelsViewContext;
use crate::ui::pad_panel::PadPanelContext;
use crate::ui::status::{Notice, status_ui};
use crate::ui::text_panel::TextPanelContext;

/// How long after a streamed token the stream is trusted to bring the next
/// frame (its wake-ups are at most 500 ms apart while tokens flow).
const STREAM_DRIVES_FRAMES: std::time::Duration = std::time::Duration::from_millis(750);

impl StudioApp {
    /// Files dropped on the window are encoded: on an endpoint into A or B,
    /// anywhere else into the current latent.
    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let (dropped, pointer) = ctx.input(|i| {
            let files: Vec<PathBuf> =
                i.raw.dropped_files.iter().map(|f| f.path().to_owned()).filter(|p| !p.as_os_str().is_empty()).collect();
            (files, i.pointer.latest_pos())
        });
        if self.settings.tab == Tab::Latent && self.explore_diffusion {
            for path in dropped {
                self.apply(UiCommand::RestorePad(path));
            }
            return;
        }
        if self.settings.tab == Tab::Image {
            for path in dropped {
                self.apply(UiCommand::RestoreImageSettings(path));
            }
            return;
        }
        if self.settings.tab == Tab::Train {
            // A folder (or, for the GPT, a text file) dropped on the Train view becomes its data.
            if !self.train.family.on_images() {
                if let Some(path) = dropped.into_iter().next() {
                    self.train.text_path = path.display().to_string();
                }
            } else if let Some(dir) = dropped.into_iter().find(|p| p.is_dir()) {
                self.apply(UiCommand::ChooseTrainingFolder(Some(dir)));
            }
            return;
        }
        let slot = pointer
            .and_then(|p| self.panel.drop_zones.iter().find(|(rect, _)| rect.contains(p)))
            .map_or(Slot::Current, |(_, slot)| *slot);
        for path in dropped {
            if self.panel.model.as_ref().is_some_and(|m| m.can_encode) {
                self.apply(UiCommand::EncodeFile { path, slot });
            } else {
                self.notices.push(Notice {
                    text: format!("cannot encode {}: this model has no encoder", path.display()),
                    error: true,
                });
            }
        }
    }

    /// One frame: events in, panels drawn, commands applied.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if std::env::var_os("LATENT_STUDIO_LOG_REPAINTS").is_some() {
            // Why this frame was drawn: finds whatever keeps the UI redrawing.
            eprintln!("frame at {:.3} s: {:?}", ctx.input(|i| i.time), ctx.repaint_causes());
        }
        self.handle_events(&ctx);
        self.refresh_backend_views();
        self.handle_dropped_files(&ctx);
        if self.text.running.is_some() && self.text.last_token_at.is_some_and(|t| t.elapsed() < STREAM_DRIVES_FRAMES) {
            // Streamed tokens wake the UI (every 250 or 500 ms): the busy
            // indicators and the tokens/s label step with those frames.
            crate::ui::busy::frames_come_until(&ctx, ctx.input(|i| i.time) + STREAM_DRIVES_FRAMES.as_secs_f64());
        }
        let mut out = Vec::new();
        egui::Panel::top("top-bar").show(ui, |ui| self.top_bar_ui(ui, &mut out));
        egui::Panel::bottom("status-bar")
            .show(ui, |ui| status_ui(ui, &self.device, &self.jobs, &self.notices, &mut out));
        egui::CentralPanel::default().show(ui, |ui| match self.settings.tab {
            Tab::Latent => {
                ui.horizontal(|ui| {
                    ui.label("Explore");
                    if ui.selectable_label(!self.explore_diffusion, "VAE / GAN latent").clicked() {
                        out.push(UiCommand::ExploreDiffusion(false));
                    }
                    if ui.selectable_label(self.explore_diffusion, "Diffusion: latent pad").clicked() {
                        out.push(UiCommand::ExploreDiffusion(true));
                    }
                });
                if self.explore_diffusion {
                    let pad_ctx = PadPanelContext { models: &self.image_models, library: &self.library };
                    egui::ScrollArea::vertical().show(ui, |ui| self.pad.ui(ui, &pad_ctx, &mut out));
                    return;
                }
                let panel_ctx = PanelContext {
                    models: &self.models,
                    gpu_scatter: self.gpu_scatter,
                    time: ctx.input(|i| i.time),
                    strip_pending: self.jobs.any_active(&Purpose::Strip),
                };
                egui::ScrollArea::vertical().show(ui, |ui| self.panel.ui(ui, &panel_ctx, &mut out));
            }
            Tab::Train => {
                egui::ScrollArea::vertical().show(ui, |ui| self.train.ui(ui, &mut out));
            }
            Tab::Image => {
                let remote = remote_models(&self.backend_views, BackendKind::A1111);
                let remote_loras = match &self.image.model {
                    Some(crate::worker::ImageModelRef::Remote { model }) => remote_loras(&self.backend_views, model),
                    _ => Vec::new(),
                };
                let panel_ctx = ImagePanelContext {
                    models: &self.image_models,
                    remote: &remote,
                    remote_loras: &remote_loras,
                    library: &self.library,
                    folders: &self.settings.model_folders,
                };
                egui::ScrollArea::vertical().show(ui, |ui| self.image.ui(ui, &panel_ctx, &mut out));
                if !self.image.queue.is_empty() {
                    ctx.request_repaint_after(std::time::Duration::from_millis(250)); // ETA ticks
                }
            }
            Tab::Models => {
                let config = self.downloads.config();
                let view_ctx = ModelsViewContext {
                    endpoint: &config.endpoint,
                    cache_dir: &config.cache_dir,
                    offline: config.offline,
                    has_token: config.token.is_some(),
                    backends: &self.backend_views,
                };
                egui::ScrollArea::vertical().show(ui, |ui| self.models_panel.ui(ui, &view_ctx, &mut out));
                if self.models_panel.busy() {
                    ctx.request_repaint_after(std::time::Duration::from_millis(250)); // speed and ETA ticks
                }
            }
            Tab::History => self.history.ui(ui, &mut out),
            Tab::Text => {
                let remote = remote_models(&self.backend_views, BackendKind::OpenAi);
                let panel_ctx = TextPanelContext { models: &self.text_models, remote: &remote };
                egui::ScrollArea::vertical().show(ui, |ui| self.text.ui(ui, &panel_ctx, &mut out));
                if self.text.running.is_some() && !crate::ui::busy::frames_come(&ctx) {
                    ctx.request_repaint_after(std::time::Duration::from_millis(500)); // tokens/s ticks
                }
            }
        });
        about_window(&ctx, &mut self.about_open, &self.models);
        self.settings.method = self.panel.method;
        self.settings.frames = self.panel.frames;
        self.settings.sampling = self.text.sampling.clone();
        self.settings.max_tokens = self.text.max_tokens;
        self.settings.kv_cache = self.text.kv_cache;
        self.settings.chat = self.text.chat;
        for command in out {
            self.apply(command);
        }
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.strong("Latent Studio");
            ui.separator();
            for (tab, name) in [
                (Tab::Latent, "Latent"),
                (Tab::Image, "Image"),
                (Tab::Text, "Text"),
                (Tab::Train, "Train"),
                (Tab::Models, "Models"),
                (Tab::History, "History"),
            ] {
                if ui.selectable_label(self.settings.tab == tab, name).clicked() {
                    out.push(UiCommand::ShowTab(tab));
                }
            }
            ui.separator();
            if self.settings.tab != Tab::Latent {
                self.top_bar_common_ui(ui, out);
                return;
            }
            let current = self.selected.clone().unwrap_or_default();
            let shown =
                self.models.iter().find(|m| m.id == current).map(|m| m.name.clone()).unwrap_or_else(|| "(none)".into());
            egui::ComboBox::from_label("Model").selected_text(shown).show_ui(ui, |ui| {
                for m in self.models.iter().filter(|m| m.family.has_latent()) {
                    let text = format!("{} — {}-D {}", m.name, m.latent_dim, m.family.name());
                    if ui.selectable_label(m.id == current, text).clicked() && m.id != current {
                        out.push(UiCommand::SelectModel(m.id.clone()));
                    }
                }
            });
            ui.separator();
            self.top_bar_common_ui(ui, out);
        });
    }

    /// Output folder and About, shown in every view.
    fn top_bar_common_ui(&self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        let dir = self.settings.output_dir.display().to_string();
        if ui.button("Output folder…").on_hover_text(format!("Saving into {dir}")).clicked() {
            out.push(UiCommand::ChooseOutputDir);
        }
        ui.label(egui::RichText::new(dir).weak().small());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("About").clicked() {
                out.push(UiCommand::ShowAbout);
            }
        });
    }
}
