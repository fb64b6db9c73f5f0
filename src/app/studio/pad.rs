//! The Latent view's diffusion side: pad changes become renders on the
//! image thread, one at a time; a change while one runs marks the pad stale
//! and the newest state is rendered as soon as the running one is done.

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::io::image_record::read_image_record;
use crate::spec::image::ImageRequest;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::ui::status::Notice;
use crate::worker::{ImageModelRef, PadJob, TravelJob, WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies a pad command; returns it back if it is not one.
    pub(super) fn apply_pad_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::SelectPadModel(model) => {
                self.pad.model = Some(model);
                self.pad.image = None;
                self.apply(UiCommand::RenderPad { save: false });
            }
            UiCommand::RenderPad { save } => {
                if let Some(running) = self.pad.in_flight.filter(|_| !save) {
                    if !self.pad.previewed {
                        self.pad.stale = true;
                        return None;
                    }
                    // Its preview is on screen: the newest state wins over its refinement.
                    self.apply(UiCommand::Cancel(running));
                }
                let model = self.pad.model.clone()?;
                let side = self.pad_side(&model);
                let job = PadJob {
                    preview_decoder: self.preview_decoder_for(Some(&model)),
                    model,
                    base: self.pad.base(side),
                    latent: self.pad.recipe(),
                    output_dir: save.then(|| self.settings.output_dir.clone()),
                };
                let (purpose, label) =
                    if save { (Purpose::Save, "save pad image") } else { (Purpose::Pad, "latent pad") };
                let id = self.submit(WorkerRequest::RenderPad(Box::new(job)), purpose, label);
                if !save {
                    (self.pad.in_flight, self.pad.stale, self.pad.previewed) = (Some(id), false, false);
                    self.pad.asked_at = Some(std::time::Instant::now());
                }
            }
            UiCommand::MakeTravel => {
                let model = self.pad.model.clone()?;
                let base = ImageRequest { steps: self.pad.travel.steps, ..self.pad.base(self.pad_side(&model)) };
                let job = TravelJob {
                    model,
                    base,
                    plan: self.pad.travel.plan(&self.pad.concepts),
                    format: self.pad.travel.format,
                    output_dir: self.settings.output_dir.clone(),
                };
                let id = self.submit(WorkerRequest::RenderTravel(Box::new(job)), Purpose::Save, "travel");
                let travel = &mut self.pad.travel;
                (travel.job, travel.saved) = (Some(id), None);
                travel.rendered.clear();
            }
            UiCommand::RestorePad(path) => self.dialogs.open(move || {
                let record = read_image_record(&path).map(|r| r.map(Box::new));
                Some(DialogOutcome::PadSettings { path, record })
            }),
            other => return Some(other),
        }
        None
    }

    /// The side the pad renders at: an installed model's own, a checkpoint's family's, else 512.
    fn pad_side(&self, model: &ImageModelRef) -> usize {
        let installed = match model {
            ImageModelRef::Id(id) => self.models.iter().find(|m| &m.id == id).map(|m| m.image_size[0]),
            _ => None,
        };
        installed.filter(|&side| side > 0).or_else(|| self.native_side(model)).unwrap_or(512)
    }

    /// Applies a dialog's answer for the pad; returns it back if it is not one.
    pub(super) fn apply_pad_dialog(&mut self, outcome: DialogOutcome) -> Option<DialogOutcome> {
        let DialogOutcome::PadSettings { path, record } = outcome else { return Some(outcome) };
        let restored = match record {
            Ok(Some(record)) => self.pad.restore(&record),
            Ok(None) => false,
            Err(e) => {
                self.notices.push(Notice { text: format!("cannot read settings: {e}"), error: true });
                return None;
            }
        };
        let text = if restored {
            // A travel fills the travel editor; the pad itself renders again either way.
            self.apply(UiCommand::RenderPad { save: false });
            format!("pad restored from {}", path.display())
        } else {
            format!("{} was not made with the latent pad or a travel", path.display())
        };
        self.notices.push(Notice { text, error: !restored });
        None
    }

    /// Applies a pad render's event; returns it back if it is not one.
    pub(super) fn apply_pad_event(&mut self, ctx: &egui::Context, event: WorkerEvent) -> Option<WorkerEvent> {
        match event {
            WorkerEvent::PadPreview { job, image, millis } => {
                if self.pad.in_flight == Some(job) {
                    let size = [image.width() as usize, image.height() as usize];
                    let color = egui::ColorImage::from_rgb(size, image.as_raw());
                    let texture = ctx.load_texture("latent-pad-preview", color, egui::TextureOptions::LINEAR);
                    (self.pad.preview, self.pad.previewed) = (Some((texture, millis)), true);
                    if self.pad.stale {
                        self.apply(UiCommand::RenderPad { save: false });
                    }
                }
            }
            WorkerEvent::PadRendered { job, image, record, millis, saved } => {
                if let Some(saved) = saved {
                    let notice = match saved {
                        Ok(path) => Notice { text: format!("saved {}", path.display()), error: false },
                        Err(e) => Notice { text: format!("the pad image was not saved: {e}"), error: true },
                    };
                    self.notices.push(notice);
                }
                if self.pad.in_flight == Some(job) {
                    self.pad.in_flight = None;
                    let color =
                        egui::ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw());
                    let texture = ctx.load_texture("latent-pad", color, egui::TextureOptions::NEAREST);
                    self.pad.image = Some((texture, *record, millis));
                    if let Some(asked) = self.pad.asked_at {
                        self.pad.latency.shown(asked, std::time::Instant::now());
                    }
                    self.pad.preview = None;
                    if self.pad.stale {
                        self.apply(UiCommand::RenderPad { save: false });
                    }
                }
            }
            WorkerEvent::TravelFrameRendered { job, index, image } if self.pad.travel.job == Some(job) => {
                let color =
                    egui::ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw());
                let texture = ctx.load_texture(format!("travel-{index}"), color, egui::TextureOptions::NEAREST);
                self.pad.travel.rendered.push(texture);
            }
            WorkerEvent::TravelDone { job, saved } => {
                if self.pad.travel.job == Some(job) {
                    self.pad.travel.job = None;
                }
                let notice = match saved {
                    Ok(path) => {
                        let text = format!("saved {}", path.display());
                        self.pad.travel.saved = Some(path);
                        Notice { text, error: false }
                    }
                    Err(e) => Notice { text: format!("the travel was not saved: {e}"), error: true },
                };
                self.notices.push(notice);
            }
            WorkerEvent::Failed { job, .. } | WorkerEvent::Cancelled { job } if self.pad.travel.job == Some(job) => {
                self.pad.travel.job = None;
                return Some(event); // the status bar reports it
            }
            WorkerEvent::Failed { job, .. } | WorkerEvent::Cancelled { job } if self.pad.in_flight == Some(job) => {
                (self.pad.in_flight, self.pad.stale) = (None, false);
                return Some(event); // the status bar reports it
            }
            other => return Some(other),
        }
        None
    }
}
