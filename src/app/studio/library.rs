//! The model library: the user's folders (an A1111/Forge or ComfyUI
//! install, or any folder) listed off the UI thread with their hashes; the
//! image panel picks checkpoints, VAEs and LoRAs from it, and an image
//! dropped from another tool gets its checkpoint and LoRAs back from it.

use std::path::PathBuf;

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::diffusion::model_library::hashes::HashCache;
use crate::diffusion::model_library::restore::restore;
use crate::diffusion::model_library::{ItemKind, scan};
use crate::diffusion::prompt::extra::take_extras;
use crate::io::image_record::ImageRecord;
use crate::ui::commands::UiCommand;
use crate::ui::status::Notice;
use crate::worker::ImageModelRef;

impl StudioApp {
    /// Applies a library command; returns it back if it is not one.
    pub(super) fn apply_library_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::AddModelFolder(None) => self.dialogs.open(|| {
                let dir = rfd::FileDialog::new().set_title("A model folder (A1111, ComfyUI, or any)").pick_folder()?;
                Some(DialogOutcome::ModelFolder(dir))
            }),
            UiCommand::AddModelFolder(Some(dir)) => {
                if !self.settings.model_folders.contains(&dir) {
                    self.settings.model_folders.push(dir);
                }
                self.apply(UiCommand::RescanLibrary);
            }
            UiCommand::RemoveModelFolder(dir) => {
                self.settings.model_folders.retain(|d| d != &dir);
                self.library.retain(|item| !item.path.starts_with(&dir));
            }
            // Hashing reads every new file once: a helper thread does it.
            UiCommand::RescanLibrary => {
                // The user's folders, then the hub cache's snapshots (downloaded models).
                let mut folders = self.settings.model_folders.clone();
                folders.extend(self.hub_snapshots());
                self.dialogs.open(move || {
                    let mut hashes = HashCache::default_location();
                    let items = scan(&folders, Some(&mut hashes));
                    hashes.save();
                    Some(DialogOutcome::Library(items))
                });
            }
            other => return Some(other),
        }
        None
    }

    /// Applies a library dialog's answer; returns it back if it is not one.
    pub(super) fn apply_library_dialog(&mut self, outcome: DialogOutcome) -> Option<DialogOutcome> {
        match outcome {
            DialogOutcome::ModelFolder(dir) => self.apply(UiCommand::AddModelFolder(Some(dir))),
            DialogOutcome::Library(items) => {
                let unreadable = items.iter().filter(|i| matches!(i.kind, ItemKind::Other { .. })).count();
                if unreadable > 0 {
                    self.notices.push(Notice {
                        text: format!("{unreadable} files in the model folders are not models the studio can use (see the library list)"),
                        error: false,
                    });
                }
                self.library = items;
            }
            other => return Some(other),
        }
        None
    }

    /// The folders holding the library's LoRAs, where prompts' `<lora:name>` are looked up.
    pub(super) fn lora_dirs(&self) -> Vec<PathBuf> {
        self.folders_of(&ItemKind::Lora)
    }

    /// The folders holding the library's textual-inversion embeddings.
    pub(super) fn embedding_dirs(&self) -> Vec<PathBuf> {
        self.folders_of(&ItemKind::Embedding)
    }

    fn folders_of(&self, kind: &ItemKind) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .library
            .iter()
            .filter(|i| &i.kind == kind)
            .filter_map(|i| i.path.parent().map(PathBuf::from))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The library's tiny preview decoder for the chosen model: TAESDXL for
    /// SDXL checkpoints, TAESD for the others (by name, as both are
    /// published), else the first one.
    pub(super) fn preview_decoder(&self) -> Option<PathBuf> {
        self.preview_decoder_for(self.image.model.as_ref())
    }

    /// The library's tiny decoder for `model` (TAESDXL for an SDXL checkpoint).
    pub(super) fn preview_decoder_for(&self, model: Option<&ImageModelRef>) -> Option<PathBuf> {
        // Only for the user's own checkpoints: the studio's models have their own latent spaces.
        if !matches!(model, Some(ImageModelRef::File { .. } | ImageModelRef::Dir(_))) {
            return None;
        }
        let decoders: Vec<_> = self.library.iter().filter(|i| i.kind == ItemKind::PreviewDecoder).collect();
        let sdxl = match model {
            Some(ImageModelRef::File { file, .. }) => self
                .library
                .iter()
                .any(|i| &i.path == file && matches!(&i.kind, ItemKind::Checkpoint { family } if family == "SDXL")),
            _ => false,
        };
        let named = |xl: bool| decoders.iter().find(|d| d.name.to_lowercase().contains("xl") == xl);
        named(sdxl).or(decoders.first()).map(|d| d.path.clone())
    }

    /// The side a library checkpoint's family was trained at (SD 1.x 512,
    /// SD 2.x 768, SDXL 1024), for its size when it is picked.
    pub(super) fn native_side(&self, model: &ImageModelRef) -> Option<usize> {
        let ImageModelRef::File { file, .. } = model else { return None };
        let item = self.library.iter().find(|i| &i.path == file)?;
        match &item.kind {
            ItemKind::Checkpoint { family } if family == "SD 1.x" => Some(512),
            ItemKind::Checkpoint { family } if family == "SD 2.x" => Some(768),
            ItemKind::Checkpoint { family } if family == "SDXL" => Some(1024),
            _ => None,
        }
    }

    /// Finds a restored image's checkpoint and LoRAs in the library: the
    /// checkpoint becomes the model; what is missing is said.
    pub(super) fn restore_models(&mut self, record: &ImageRecord) {
        let loras: Vec<String> = take_extras(&record.request.prompt).loras.into_iter().map(|t| t.name).collect();
        let found = restore(&self.library, &record.model, record.model_hash.as_deref(), &loras, &record.lora_hashes);
        if let Some(path) = found.checkpoint {
            let model =
                if path.is_dir() { ImageModelRef::Dir(path) } else { ImageModelRef::File { file: path, vae: None } };
            self.image.model = Some(model);
        }
        if !found.loras.is_empty() {
            let names: Vec<&str> = found.loras.iter().map(|(n, _)| n.as_str()).collect();
            self.notices.push(Notice { text: format!("LoRAs restored: {}", names.join(", ")), error: false });
        }
        if !found.missing.is_empty() {
            self.notices
                .push(Notice { text: format!("not in the model library: {}", found.missing.join(", ")), error: true });
        }
    }
}
