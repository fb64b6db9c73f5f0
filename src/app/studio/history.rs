//! The History view's work off the UI thread: the index refresh, thumbnails
//! (cached on disk), trash and undo; and its links to the other views
//! (reuse settings in the Image view, open on the latent pad).

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::diffusion::model_library::hashes::cache_dir;
use crate::history::trash::{home_trash, move_to_trash, restore};
use crate::history::{HistoryIndex, thumbnail};
use crate::spec::latent_control::PadPoint;
use crate::ui::commands::{Tab, UiCommand};
use crate::ui::history_panel::THUMB;
use crate::ui::status::Notice;
use crate::worker::ImageModelRef;

impl StudioApp {
    /// Applies a History command; returns it back if it is not one.
    pub(super) fn apply_history_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::RefreshHistory => {
                self.history.refreshing = true;
                let dir = self.settings.output_dir.clone();
                self.dialogs.open(move || {
                    let mut index = HistoryIndex::open(&dir, cache_dir().as_deref());
                    index.refresh();
                    Some(DialogOutcome::History(index.entries().to_vec()))
                });
            }
            UiCommand::LoadThumbnails(paths) => {
                let entries: Vec<_> =
                    self.history.entries.iter().filter(|e| paths.contains(&e.path)).cloned().collect();
                self.dialogs.open(move || {
                    let cache = cache_dir();
                    let thumbs =
                        entries.iter().filter_map(|e| Some((e.path.clone(), thumbnail(e, THUMB, cache.as_deref())?)));
                    Some(DialogOutcome::Thumbnails(thumbs.collect()))
                });
            }
            UiCommand::SelectHistory(path) => self.history.selected = Some(path),
            UiCommand::ReuseHistory(path) => {
                let record = self.history.entries.iter().find(|e| e.path == path).and_then(|e| e.record.clone())?;
                if self.pad.restore(&record) {
                    self.pad.model = Some(ImageModelRef::Id(record.model.clone()));
                    self.explore_diffusion = true;
                    self.settings.tab = Tab::Latent;
                } else {
                    self.image.restore(&record);
                    self.restore_models(&record);
                    self.settings.tab = Tab::Image;
                }
            }
            UiCommand::OpenHistoryInPad(path) => {
                let record = self.history.entries.iter().find(|e| e.path == path).and_then(|e| e.record.clone())?;
                if !self.pad.restore(&record) {
                    // The image becomes the pad's first point, with the cursor on it.
                    let r = &record.request;
                    let (x, y) = (0.0, 0.0);
                    let first = PadPoint { prompt: r.prompt.clone(), seed: r.seed, x, y };
                    match self.pad.pad.points.first_mut() {
                        Some(point) => *point = first,
                        None => self.pad.pad.points.push(first),
                    }
                    self.pad.pad.at = (x, y);
                    (self.pad.negative, self.pad.guidance) = (r.negative.clone(), r.guidance);
                }
                if self.image_models.iter().any(|m| m.id == record.model) {
                    self.pad.model = Some(ImageModelRef::Id(record.model.clone()));
                }
                self.explore_diffusion = true;
                self.settings.tab = Tab::Latent;
            }
            UiCommand::TrashHistory(path) => {
                let Some(trash) = home_trash() else {
                    self.notices.push(Notice { text: "no home folder: no trash to move files to".into(), error: true });
                    return None;
                };
                self.dialogs.open(move || Some(DialogOutcome::Trashed(move_to_trash(&path, &trash))));
            }
            UiCommand::UndoTrash => {
                let trashed = self.trashed.take()?;
                self.history.undo = None;
                self.dialogs.open(move || Some(DialogOutcome::Restored(restore(&trashed).map(|()| trashed.original))));
            }
            other => return Some(other),
        }
        None
    }

    /// Applies a History outcome; returns it back if it is not one.
    pub(super) fn apply_history_dialog(
        &mut self,
        ctx: &egui::Context,
        outcome: DialogOutcome,
    ) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::History(entries) => self.history.set_entries(entries),
            DialogOutcome::Thumbnails(thumbs) => {
                for (path, image) in thumbs {
                    let size = [image.width() as usize, image.height() as usize];
                    let color = egui::ColorImage::from_rgba_unmultiplied(size, image.as_raw());
                    let name = format!("thumb-{}", path.display());
                    let texture = ctx.load_texture(name, color, egui::TextureOptions::LINEAR);
                    self.history.thumbnails.insert(path, texture);
                }
            }
            DialogOutcome::Trashed(Ok(trashed)) => {
                let kept = self.history.entries.iter().filter(|e| e.path != trashed.original).cloned().collect();
                self.history.set_entries(kept);
                if self.history.selected.as_ref() == Some(&trashed.original) {
                    self.history.selected = None;
                }
                self.history.undo = Some(trashed.original.clone());
                self.notices
                    .push(Notice { text: format!("moved {} to the trash", trashed.original.display()), error: false });
                self.trashed = Some(trashed);
            }
            DialogOutcome::Restored(Ok(path)) => {
                self.notices.push(Notice { text: format!("restored {}", path.display()), error: false });
                self.apply(UiCommand::RefreshHistory);
            }
            DialogOutcome::Trashed(Err(e)) | DialogOutcome::Restored(Err(e)) => {
                self.notices.push(Notice { text: e, error: true });
            }
            other => return Some(other),
        }
        None
    }
}
