//! What panels ask of the app. Panels only push commands; the app applies
//! them after drawing, so no panel touches the worker directly.

use std::path::PathBuf;

use crate::hub::config::Token;
use crate::hub::pull::PullPlan;
use crate::worker::downloads::DownloadId;
use crate::worker::{ImageModelRef, JobId, TextModelRef};

/// The studio's main views.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// Latent space: sliders, map, interpolation.
    #[default]
    Latent,
    /// Language models.
    Text,
    /// Training a GAN, with live losses and samples.
    Train,
    /// Text-to-image with diffusion models.
    Image,
    /// Models from the Hugging Face Hub: catalogue, downloads, installed.
    Models,
    /// Everything written to the output folder.
    History,
}

/// Which latent an encoded image replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The latent shown by the sliders.
    Current,
    /// Interpolation start.
    A,
    /// Interpolation end.
    B,
}

/// What to save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveKind {
    /// The current image.
    Image,
    /// A 4×4 grid of seeded samples from the current seed on.
    Grid,
    /// The interpolation strip as one PNG.
    Strip,
    /// The interpolation as a looping GIF.
    Animation,
}

/// What the Text view's conversation asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatCommand {
    /// Append the written message and answer it.
    Send,
    /// Answer the last user message again (dropping the answer it has).
    Regenerate,
    /// Stop the answer being generated (what it has so far is kept).
    Stop,
    /// Replace message `index` and forget the turns after it; a user message is answered again.
    Edit { index: usize, text: String },
    /// Leave the message being edited unchanged.
    CancelEdit,
    /// Start an empty conversation.
    New,
    /// Open a saved conversation with its model and settings.
    Open(PathBuf),
    /// Give a saved conversation a title.
    Rename { path: PathBuf, title: String },
    /// Move a saved conversation to the trash.
    Delete(PathBuf),
    /// Write the open conversation as Markdown next to it.
    ExportMarkdown,
}

/// A request from a panel, applied by the app after the frame.
#[derive(Clone, Debug, PartialEq)]
pub enum UiCommand {
    /// The Text view's conversation.
    Chat(ChatCommand),
    /// Open another model.
    SelectModel(String),
    /// The current latent changed: decode a preview.
    DecodeCurrent,
    /// Endpoints, method or frame count changed: decode the strip.
    DecodeStrip,
    /// Decode the latent panel's grid of seeds.
    DecodeGrid,
    /// Encode an image file into a slot.
    EncodeFile {
        path: PathBuf,
        slot: Slot,
    },
    /// Ask for an image file, then encode it into a slot.
    PickImage(Slot),
    /// Save into the output folder (`dialog: false`) or via "Save as…".
    Save {
        kind: SaveKind,
        dialog: bool,
    },
    /// Choose the output folder.
    ChooseOutputDir,
    /// Stop a job.
    Cancel(JobId),
    /// Show the About window.
    ShowAbout,
    /// Switch the main view.
    ShowTab(Tab),
    /// Explore a diffusion model's latent (the pad) in the Latent view, or a VAE's/GAN's.
    ExploreDiffusion(bool),
    /// Use this diffusion model on the latent pad.
    SelectPadModel(ImageModelRef),
    /// Render the latent pad at its cursor (and save the image when asked).
    RenderPad {
        save: bool,
    },
    /// Restore the pad (or the travel's keyframes) from the settings in this file.
    RestorePad(PathBuf),
    /// Render the travel editor's keyframes into an animation in the output folder.
    MakeTravel,
    /// Index the output folder again (new and changed files only).
    RefreshHistory,
    /// Make thumbnails of these History files.
    LoadThumbnails(Vec<PathBuf>),
    /// Select a History file.
    SelectHistory(PathBuf),
    /// Take a History image's settings into the Image view (or the pad, for a pad image).
    ReuseHistory(PathBuf),
    /// Put a History image on the latent pad.
    OpenHistoryInPad(PathBuf),
    /// Move a History file to the trash.
    TrashHistory(PathBuf),
    /// Put the last trashed file back.
    UndoTrash,
    /// Use another language model.
    SelectTextModel(TextModelRef),
    /// Ask for a GGUF file and use it as the language model.
    OpenTextModel,
    /// Generate text from the text panel's prompt and settings.
    Generate,
    /// Save the last generated text with its settings.
    SaveText,
    /// Rank a folder's images by how unusual the Latent view's VAE finds them (`None`: ask for the folder).
    RankOutliers(Option<PathBuf>),
    /// Save the latest outlier ranking as JSON (asks where).
    ExportOutliers,
    /// Denoise this image with the Latent view's VAE (`None`: ask for it).
    DenoiseImage(Option<PathBuf>),
    /// Denoise the same image again with the new noise settings.
    DenoiseAgain,
    /// Start training with the training view's settings.
    StartTraining,
    /// Stop the run now, keeping it to resume (also after a restart).
    PauseTraining,
    /// Go on with the paused run.
    ResumeTraining,
    /// Export the paused run's model from its last checkpoint.
    FinishTraining,
    /// Stop offering the paused run (its folder stays).
    ForgetPausedTraining,
    /// Ask for a text file to train the character GPT on.
    ChooseTrainingText,
    /// Train on this folder of images (`None`: ask for it).
    ChooseTrainingFolder(Option<PathBuf>),
    /// Read the training folder off the UI thread and show what the model will see.
    PreviewTrainingFolder,
    /// Follow a command-line GAN run in a folder (`None`: ask for the folder).
    WatchGanRun(Option<PathBuf>),
    /// Use another diffusion model.
    SelectImageModel(ImageModelRef),
    /// Ask for a diffusers folder and use it as the diffusion model.
    OpenImageModel,
    /// Ask for a single-file checkpoint (.safetensors) and use it.
    OpenImageCheckpoint,
    /// Ask for a PNG and restore the settings stored in it.
    OpenImageSettings,
    /// Restore the settings stored in this PNG.
    RestoreImageSettings(PathBuf),
    /// Ask for an init image (image-to-image).
    PickInitImage,
    /// Back to text-to-image.
    ClearInitImage,
    /// Queue the image panel's batch.
    GenerateImages,
    /// Queue a walk between the noise of results A and B.
    WalkSeeds,
    /// Add a model folder to the library (`None`: ask for it).
    AddModelFolder(Option<PathBuf>),
    /// Take a folder out of the library.
    RemoveModelFolder(PathBuf),
    /// List the library's folders again.
    RescanLibrary,
    /// Ask the Hub for a repo's files.
    DescribeRepo {
        repo: String,
        revision: String,
    },
    /// Queue a pull (`branch`: the revision the user named).
    Download {
        plan: PullPlan,
        branch: String,
    },
    PauseDownload(DownloadId),
    ResumeDownload(DownloadId),
    CancelDownload(DownloadId),
    /// Show a folder in the system's file manager.
    OpenFolder(PathBuf),
    /// Delete a repo from the hub cache.
    DeleteRepo(String),
    /// List the hub cache again.
    RefreshInstalled,
    /// Keep this Hub token (in `$HF_HOME/token`, owner-only) and use it.
    SaveHubToken(Token),
    /// Add a remote backend (its key, if any, goes to the owner-only key file).
    AddBackend {
        config: crate::spec::backend::BackendConfig,
        key: Option<Token>,
    },
    /// Remove a remote backend (and forget its key).
    RemoveBackend(crate::spec::backend::BackendConfig),
}
