//! The studio's image side: the image panel's commands become generation
//! jobs on the worker's image thread; its steps, previews and results become
//! panel state.

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::io::image_record::read_image_record;
use crate::io::manifest::Family;
use crate::latent::interpolate::slerp;
use crate::ui::commands::UiCommand;
use crate::ui::image_panel::ImageResult;
use crate::ui::jobs::Purpose;
use crate::ui::latent_panel::fresh_seed;
use crate::ui::status::Notice;
use crate::worker::{ImageJob, ImageModelRef, WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies an image-panel command; returns it back if it is not one.
    pub(super) fn apply_image_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::SelectImageModel(model) => {
                if let ImageModelRef::Id(id) = &model
                    && let Some(m) = self.models.iter().find(|m| &m.id == id && m.family == Family::Diffusion)
                    && m.image_size[0] > 0
                {
                    [self.image.width, self.image.height] = m.image_size;
                }
                if let Some(side) = self.native_side(&model) {
                    (self.image.width, self.image.height) = (side, side);
                }
                self.image.model = Some(model);
            }
            UiCommand::OpenImageModel => self.dialogs.open(|| {
                let dir = rfd::FileDialog::new().set_title("A diffusers model folder").pick_folder()?;
                Some(DialogOutcome::ImageModel(dir))
            }),
            UiCommand::OpenImageCheckpoint => self.dialogs.open(|| {
                let file = rfd::FileDialog::new()
                    .set_title("A Stable Diffusion checkpoint (SD 1.x, 2.x, XL)")
                    .add_filter("safetensors", &["safetensors"])
                    .pick_file()?;
                Some(DialogOutcome::ImageCheckpoint(file))
            }),
            UiCommand::OpenImageSettings => self.dialogs.open(|| {
                let path = rfd::FileDialog::new().add_filter("PNG images", &["png"]).pick_file()?;
                let record = read_image_record(&path).map(|r| r.map(Box::new));
                Some(DialogOutcome::ImageSettings { path, record })
            }),
            // Read off the UI thread, as a dialog's answer is.
            UiCommand::RestoreImageSettings(path) => self.dialogs.open(move || {
                let record = read_image_record(&path).map(|r| r.map(Box::new));
                Some(DialogOutcome::ImageSettings { path, record })
            }),
            UiCommand::PickInitImage => self.dialogs.open(|| {
                let path =
                    rfd::FileDialog::new().add_filter("Images", &["png", "jpg", "jpeg", "bmp", "gif"]).pick_file()?;
                Some(DialogOutcome::InitImage(path))
            }),
            UiCommand::ClearInitImage => self.image.init_image = None,
            UiCommand::GenerateImages => {
                if self.image.random_seed {
                    self.image.seed = fresh_seed(self.image.seed);
                }
                for i in 0..self.image.batch {
                    let request = self.image.request(i);
                    let label = format!("seed {}", request.seed);
                    self.submit_image(request, None, label);
                }
            }
            UiCommand::WalkSeeds => {
                let [Some(a), Some(b)] = self.image.ends else { return None };
                let (Some(a), Some(b)) = (self.image.results.get(a), self.image.results.get(b)) else { return None };
                if a.noise.len() != b.noise.len() {
                    self.notices.push(Notice {
                        text: "A and B have different sizes: no walk between them".into(),
                        error: true,
                    });
                    return None;
                }
                let (request, na, nb) = (a.record.request.clone(), a.noise.clone(), b.noise.clone());
                let (sa, sb) = (a.record.request.seed, b.record.request.seed);
                let frames = self.image.walk_frames.max(2);
                for f in 0..frames {
                    let t = f as f32 / (frames - 1) as f32;
                    let origin = format!("slerp of seed {sa} and seed {sb} noise at t = {t:.2}");
                    self.submit_image(
                        request.clone(),
                        Some((slerp(&na, &nb, t), origin)),
                        format!("walk {}/{frames}", f + 1),
                    );
                }
            }
            other => return self.apply_library_command(other),
        }
        None
    }

    fn submit_image(
        &mut self,
        request: crate::diffusion::pipeline::ImageRequest,
        noise: Option<(Vec<f32>, String)>,
        label: String,
    ) {
        let Some(model) = self.image.model.clone() else { return };
        let job = ImageJob {
            model,
            request,
            init: self.image.init_image.clone(),
            noise,
            preview_every: self.image.preview_every,
            output_dir: self.settings.output_dir.clone(),
            lora_dirs: self.lora_dirs(),
            preview_decoder: self.preview_decoder(),
            embedding_dirs: self.embedding_dirs(),
        };
        let id = self.submit(WorkerRequest::GenerateImage(Box::new(job)), Purpose::Image, format!("image {label}"));
        self.image.queued(id, label);
    }

    /// Applies a dialog's answer for the image panel; returns it back if it is not one.
    pub(super) fn apply_image_dialog(&mut self, outcome: DialogOutcome) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::ImageModel(dir) => self.apply(UiCommand::SelectImageModel(ImageModelRef::Dir(dir))),
            DialogOutcome::ImageCheckpoint(file) => {
                self.apply(UiCommand::SelectImageModel(ImageModelRef::File { file, vae: None }))
            }
            DialogOutcome::InitImage(path) => self.image.init_image = Some(path),
            DialogOutcome::ImageSettings { path, record } => match record {
                Ok(Some(record)) => {
                    self.image.restore(&record);
                    self.notices
                        .push(Notice { text: format!("settings restored from {}", path.display()), error: false });
                    self.restore_models(&record);
                }
                Ok(None) => self
                    .notices
                    .push(Notice { text: format!("{} holds no generation settings", path.display()), error: true }),
                Err(e) => self.notices.push(Notice { text: format!("cannot read settings: {e}"), error: true }),
            },
            other => return self.apply_library_dialog(other),
        }
        None
    }

    /// Applies an image-thread event; returns it back if it is not one.
    pub(super) fn apply_image_event(&mut self, ctx: &egui::Context, event: WorkerEvent) -> Option<WorkerEvent> {
        let ours = |job| self.image.owns(job);
        match event {
            WorkerEvent::Progress { job, step, total, .. } if ours(job) => self.image.progress(job, step, total),
            WorkerEvent::ImagePreview { job, image, .. } if ours(job) => {
                let texture = ctx.load_texture(
                    format!("diffusion-preview-{}", job.0),
                    to_color_image(&image),
                    egui::TextureOptions::NEAREST,
                );
                self.image.preview = Some((job, texture));
            }
            WorkerEvent::ImageDone { job, image, record, noise, saved } => {
                self.image.ended(job);
                let texture = ctx.load_texture(
                    format!("diffusion-result-{}", job.0),
                    to_color_image(&image),
                    egui::TextureOptions::NEAREST,
                );
                let notice = match &saved {
                    Ok(path) => Notice { text: format!("saved {}", path.display()), error: false },
                    Err(e) => Notice { text: format!("image kept in the panel but not saved: {e}"), error: true },
                };
                self.notices.push(notice);
                self.image.results.push(ImageResult { texture, record: *record, noise, saved });
            }
            WorkerEvent::Failed { job, .. } | WorkerEvent::Cancelled { job } if ours(job) => {
                self.image.ended(job);
                return Some(event); // the status bar reports it too
            }
            WorkerEvent::ImagePreview { .. } => {}
            other => return Some(other),
        }
        None
    }
}

fn to_color_image(image: &image::RgbImage) -> egui::ColorImage {
    egui::ColorImage::from_rgb([image.width() as usize, image.height() as usize], image.as_raw())
}
