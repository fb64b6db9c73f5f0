//! The user's model collection: folders they point the studio at — an
//! AUTOMATIC1111/Forge install (`models/Stable-diffusion`, `models/Lora`,
//! `models/VAE`, `embeddings`), a ComfyUI one (`models/checkpoints`,
//! `models/loras`, `models/vae`, `models/embeddings`) or any folder — listed
//! by what each file is (read from its header, not its name), with sizes and
//! A1111's hashes (`hashes`, cached). `restore` finds the model and LoRAs an
//! image names.

pub mod hashes;
pub mod restore;

use std::path::{Path, PathBuf};

use crate::diffusion::checkpoint::family::{NotACheckpoint, detect};
use crate::diffusion::checkpoint::tensor_file::TensorFile;
pub use crate::spec::library::{ItemKind, LibraryItem};
use hashes::HashCache;

/// Subfolders of known installs, and the kind of file each is meant for.
const KNOWN_SUBFOLDERS: &[&str] = &[
    "models/Stable-diffusion",
    "models/Lora",
    "models/VAE",
    "models/VAE-approx",
    "embeddings",
    "models/checkpoints",
    "models/loras",
    "models/vae",
    "models/vae_approx",
    "models/embeddings",
];

/// The extensions looked at.
const EXTENSIONS: &[&str] = &["safetensors", "ckpt", "pt", "pth", "bin"];

/// What a safetensors file or folder is, read from its header.
pub fn classify(path: &Path) -> ItemKind {
    if path.is_dir() {
        return if path.join("model_index.json").is_file() || path.join("unet").is_dir() {
            ItemKind::DiffusersFolder
        } else {
            ItemKind::Other { reason: "a folder without model_index.json".into() }
        };
    }
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if extension != "safetensors" {
        return ItemKind::Pickle;
    }
    let file = match TensorFile::open(path) {
        Ok(file) => file,
        Err(e) => return ItemKind::Other { reason: e.detail },
    };
    let shapes = file.shapes();
    if shapes.contains_key("decoder.layers.0.weight") || shapes.contains_key("encoder.layers.0.weight") {
        return ItemKind::PreviewDecoder;
    }
    match detect(&shapes) {
        Ok(family) => ItemKind::Checkpoint { family: family.label().into() },
        Err(NotACheckpoint::Lora) => ItemKind::Lora,
        Err(NotACheckpoint::VaeOnly) => ItemKind::Vae,
        Err(NotACheckpoint::Embedding) => ItemKind::Embedding,
        Err(other) => ItemKind::Other { reason: other.to_string() },
    }
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| size_of(&e.path())).sum()
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// The candidate files and folders under `root` (a known install's
/// subfolders, else the folder itself), at most `depth` levels down.
fn candidates(root: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let is_model_file = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if path.is_dir() && (path.join("model_index.json").is_file()) {
            out.push(path);
        } else if path.is_dir() && depth > 0 {
            candidates(&path, depth - 1, out);
        } else if is_model_file && !path.is_dir() {
            // Files and broken links alike: a link whose file is gone is listed with why.
            out.push(path);
        }
    }
}

/// The name lists show: the file stem, as A1111 shows it; for a Hub
/// snapshot folder (`models--owner--name/snapshots/{commit}`), the repo id.
fn display_name(path: &Path) -> String {
    let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let parent = path.parent();
    let in_snapshots = parent.and_then(Path::file_name).is_some_and(|n| n == "snapshots");
    let repo_folder = parent.and_then(Path::parent).and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    match repo_folder.as_deref().and_then(|f| f.strip_prefix("models--")) {
        Some(repo) if in_snapshots && path.is_dir() => repo.replacen("--", "/", 1),
        _ => stem,
    }
}

/// Lists the models under `roots`; `hashes` fills in A1111's hashes of
/// checkpoints and LoRAs (reading each new file once).
pub fn scan(roots: &[PathBuf], mut hashes: Option<&mut HashCache>) -> Vec<LibraryItem> {
    let mut paths = Vec::new();
    for root in roots {
        let known: Vec<PathBuf> = KNOWN_SUBFOLDERS.iter().map(|s| root.join(s)).filter(|p| p.is_dir()).collect();
        if root.join("model_index.json").is_file() {
            // The folder is itself a diffusers model (a Hub snapshot, say).
            paths.push(root.clone());
        } else if known.is_empty() {
            candidates(root, 4, &mut paths);
        } else {
            for dir in known {
                candidates(&dir, 4, &mut paths);
            }
        }
    }
    paths.dedup();
    paths
        .into_iter()
        .map(|path| {
            let kind = classify(&path);
            let hash = match (&kind, hashes.as_deref_mut()) {
                (ItemKind::Checkpoint { .. }, Some(cache)) => cache.model_hash(&path).ok(),
                (ItemKind::Lora, Some(cache)) => cache.lora_hash(&path).ok(),
                _ => None,
            };
            let name = display_name(&path);
            LibraryItem { size: size_of(&path), name, kind, hash, path }
        })
        .collect()
}
