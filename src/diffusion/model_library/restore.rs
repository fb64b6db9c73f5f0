//! An image's model and LoRAs found in the library: A1111 writes the
//! checkpoint as `Model hash:` (and `Model:`, its name) and LoRAs as
//! `<lora:name:weight>` in the prompt with `Lora hashes: "name: hash, …"`.
//! Hashes win over names (files get renamed); what is not in the library is
//! listed so the user knows what to fetch.

use std::path::PathBuf;

use super::{ItemKind, LibraryItem};

/// What an image asks for and what the library holds of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    pub checkpoint: Option<PathBuf>,
    /// The LoRAs found: their name in the prompt and file.
    pub loras: Vec<(String, PathBuf)>,
    /// Human-readable names of what is missing ("model v1-5 (6ce0161689)", "LoRA glow").
    pub missing: Vec<String>,
}

/// Finds an image's model (`model_name`, `model_hash`) and the LoRAs its
/// prompt names (`lora_names`, with `lora_hashes` from the image if any).
pub fn restore(
    items: &[LibraryItem],
    model_name: &str,
    model_hash: Option<&str>,
    lora_names: &[String],
    lora_hashes: &[(String, String)],
) -> Restored {
    let mut out = Restored::default();
    let is_checkpoint = |i: &&LibraryItem| matches!(i.kind, ItemKind::Checkpoint { .. } | ItemKind::DiffusersFolder);
    let by_hash = model_hash.and_then(|h| {
        let h = h.to_lowercase();
        items.iter().filter(is_checkpoint).find(|i| i.hash.as_deref() == Some(h.as_str()))
    });
    let by_name = || items.iter().filter(is_checkpoint).find(|i| i.name.eq_ignore_ascii_case(model_name));
    match by_hash.or_else(by_name) {
        Some(item) => out.checkpoint = Some(item.path.clone()),
        None if !model_name.is_empty() || model_hash.is_some() => {
            let hash = model_hash.map(|h| format!(" ({h})")).unwrap_or_default();
            out.missing.push(format!("model {model_name}{hash}"));
        }
        None => {}
    }
    for name in lora_names {
        let hash = lora_hashes.iter().find(|(n, _)| n == name).map(|(_, h)| h.as_str());
        let loras = || items.iter().filter(|i| i.kind == ItemKind::Lora);
        let found = hash
            .and_then(|h| loras().find(|i| i.hash.as_deref() == Some(h)))
            .or_else(|| loras().find(|i| i.name.eq_ignore_ascii_case(name)));
        match found {
            Some(item) => out.loras.push((name.clone(), item.path.clone())),
            None => out.missing.push(format!("LoRA {name}")),
        }
    }
    out
}
