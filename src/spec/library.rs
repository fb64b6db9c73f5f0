//! What the model library lists: each file in the user's model folders,
//! by kind, with size and A1111's hash (found by `diffusion::model_library`,
//! shown by the image view).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a file in a model folder is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemKind {
    /// A single-file checkpoint of a family ("SD 1.x", "SD 2.x", "SDXL").
    Checkpoint {
        family: String,
    },
    /// A diffusers folder.
    DiffusersFolder,
    Lora,
    Vae,
    /// A textual-inversion embedding.
    Embedding,
    /// A tiny preview decoder (TAESD/TAESDXL, diffusers `AutoencoderTiny` layout).
    PreviewDecoder,
    /// A pickle file, which the studio does not open.
    Pickle,
    /// Something else, or unreadable: why.
    Other {
        reason: String,
    },
}

impl ItemKind {
    /// A short label for lists.
    pub fn label(&self) -> String {
        match self {
            ItemKind::Checkpoint { family } => format!("checkpoint ({family})"),
            ItemKind::DiffusersFolder => "diffusers folder".into(),
            ItemKind::Lora => "LoRA".into(),
            ItemKind::Vae => "VAE".into(),
            ItemKind::Embedding => "embedding".into(),
            ItemKind::PreviewDecoder => "preview decoder".into(),
            ItemKind::Pickle => "pickle (not opened)".into(),
            ItemKind::Other { reason } => format!("other: {reason}"),
        }
    }
}

/// One entry of the library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryItem {
    pub path: PathBuf,
    /// The name A1111 shows and prompts use (file stem).
    pub name: String,
    #[serde(flatten)]
    pub kind: ItemKind,
    /// Bytes (a folder's: its files').
    pub size: u64,
    /// A1111's short hash: 10 hex digits for checkpoints, 12 for LoRAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}
