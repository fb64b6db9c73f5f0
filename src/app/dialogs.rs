//! Native file dialogs, run off the UI thread: a dialog blocks whoever opens
//! it, and the UI must keep drawing and draining worker events meanwhile.

use std::path::PathBuf;

use crossbeam_channel::{Receiver, Sender};

use crate::ui::commands::Slot;
use crate::worker::WorkerRequest;

/// What a closed dialog asks the app to do.
pub enum DialogOutcome {
    /// Encode the chosen image into a slot.
    Encode { path: PathBuf, slot: Slot },
    /// Submit a save whose target the user just chose.
    Save { request: Box<WorkerRequest>, label: String },
    /// Use this output folder from now on.
    OutputDir(PathBuf),
    /// Use this GGUF file as the language model.
    TextModel(PathBuf),
    /// Follow the GAN run in this folder.
    WatchRun(PathBuf),
    /// Use this diffusers folder as the diffusion model.
    ImageModel(PathBuf),
    /// Use this single-file checkpoint as the diffusion model.
    ImageCheckpoint(PathBuf),
    /// The settings read from a PNG (or why they could not be).
    ImageSettings {
        path: PathBuf,
        record: Result<Option<Box<crate::io::image_record::ImageRecord>>, crate::io::error::FileError>,
    },
    /// A dropped PNG's settings for the latent pad.
    PadSettings {
        path: PathBuf,
        record: Result<Option<Box<crate::io::image_record::ImageRecord>>, crate::io::error::FileError>,
    },
    /// Use this init image.
    InitImage(PathBuf),
    /// Add this folder to the model library.
    ModelFolder(PathBuf),
    /// The library's folders, listed.
    Library(Vec<crate::spec::library::LibraryItem>),
    /// Train on this folder.
    TrainingFolder(PathBuf),
    /// A training folder, read.
    FolderPreview(crate::ui::train_panel::FolderPreview),
    /// Rank the images of this folder (outliers).
    OutlierFolder(PathBuf),
    /// Denoise this image.
    DenoiseImage(PathBuf),
    /// Train the character GPT on this text.
    TrainingText(PathBuf),
    /// The models folder, listed again (a run finished).
    ModelsFound(Vec<crate::io::manifest::ModelManifest>),
    /// The output folder's History, indexed.
    History(Vec<crate::history::HistoryEntry>),
    /// Thumbnails for the History's rows.
    Thumbnails(Vec<(PathBuf, image::RgbaImage)>),
    /// A file moved to the trash (or why not).
    Trashed(Result<crate::history::trash::Trashed, String>),
    /// A trashed file put back (or why not).
    Restored(Result<PathBuf, String>),
}

/// Runs dialogs on helper threads and hands their outcomes back.
pub struct Dialogs {
    tx: Sender<DialogOutcome>,
    rx: Receiver<DialogOutcome>,
    wake: egui::Context,
}

impl Dialogs {
    /// Outcomes wake the UI through `wake`.
    pub fn new(wake: egui::Context) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        Self { tx, rx, wake }
    }

    /// Runs `ask` (which opens a blocking dialog) on a named thread. A
    /// cancelled dialog returns `None` and nothing happens. (Linux and Windows
    /// allow dialogs off the main thread; macOS would need rfd's async API.)
    pub fn open(&self, ask: impl FnOnce() -> Option<DialogOutcome> + Send + 'static) {
        let tx = self.tx.clone();
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new().name("file-dialog".into()).spawn(move || {
            if let Some(outcome) = ask() {
                let _ = tx.send(outcome);
                wake.request_repaint();
            }
        });
        // Without a thread there is no dialog; the click simply does nothing.
        drop(spawned);
    }

    /// Outcomes of dialogs closed since the last call.
    pub fn poll(&self) -> Vec<DialogOutcome> {
        self.rx.try_iter().collect()
    }
}
