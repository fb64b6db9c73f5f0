//! Known-good repos the Models view offers first, and which of a repo's
//! files a download takes by default: for GGUF repos one quantization
//! (Q4_K_M where there is one), for diffusers repos the folder's
//! safetensors in their fp16 variant (not the pickles, the single-file
//! duplicates at the root or the safety checker), and always the model
//! card (`README.md`, where the licence is read).

use super::quant::PREFERRED;
use super::repo_info::RepoFile;

/// What a repo gives the studio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A diffusion model (a diffusers folder) for the Image view.
    Diffusion,
    /// A tiny preview decoder (TAESD) for live previews.
    PreviewDecoder,
    Lora,
    /// A GGUF language model for the Text view.
    Text,
}

impl EntryKind {
    pub fn label(self) -> &'static str {
        match self {
            EntryKind::Diffusion => "image model",
            EntryKind::PreviewDecoder => "preview decoder",
            EntryKind::Lora => "LoRA",
            EntryKind::Text => "text model",
        }
    }
}

/// One catalogue entry.
#[derive(Clone, Copy, Debug)]
pub struct CatalogueEntry {
    pub repo: &'static str,
    pub title: &'static str,
    pub kind: EntryKind,
    /// What it is for, in a few words.
    pub note: &'static str,
}

/// The catalogue, grouped by kind.
pub const CATALOGUE: &[CatalogueEntry] = &[
    CatalogueEntry {
        repo: "stabilityai/sd-turbo",
        title: "SD-Turbo",
        kind: EntryKind::Diffusion,
        note: "SD 2.1 distilled: 1–4 steps at 512², no guidance",
    },
    CatalogueEntry {
        repo: "stabilityai/sdxl-turbo",
        title: "SDXL-Turbo",
        kind: EntryKind::Diffusion,
        note: "SDXL distilled: 1–4 steps at 512², no guidance",
    },
    CatalogueEntry {
        repo: "stable-diffusion-v1-5/stable-diffusion-v1-5",
        title: "Stable Diffusion 1.5",
        kind: EntryKind::Diffusion,
        note: "the base most LoRAs and checkpoints build on",
    },
    CatalogueEntry {
        repo: "madebyollin/taesd",
        title: "TAESD",
        kind: EntryKind::PreviewDecoder,
        note: "live previews for SD 1.x/2.x (5 MB)",
    },
    CatalogueEntry {
        repo: "madebyollin/taesdxl",
        title: "TAESDXL",
        kind: EntryKind::PreviewDecoder,
        note: "live previews for SDXL (5 MB)",
    },
    CatalogueEntry {
        repo: "latent-consistency/lcm-lora-sdv1-5",
        title: "LCM-LoRA (SD 1.5)",
        kind: EntryKind::Lora,
        note: "4–8 steps with the LCM sampler, guidance 1–2",
    },
    CatalogueEntry {
        repo: "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        title: "SmolLM2 135M Instruct",
        kind: EntryKind::Text,
        note: "tiny and fast chat model (Apache-2.0)",
    },
    CatalogueEntry {
        repo: "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF",
        title: "SmolLM2 360M Instruct",
        kind: EntryKind::Text,
        note: "small chat model (Apache-2.0)",
    },
    CatalogueEntry {
        repo: "HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF",
        title: "SmolLM2 1.7B Instruct",
        kind: EntryKind::Text,
        note: "the largest SmolLM2 (Apache-2.0)",
    },
    CatalogueEntry {
        repo: "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
        title: "TinyLlama 1.1B Chat",
        kind: EntryKind::Text,
        note: "Llama 2 architecture, every quantization",
    },
    CatalogueEntry {
        repo: "bartowski/Llama-3.2-1B-Instruct-GGUF",
        title: "Llama 3.2 1B Instruct",
        kind: EntryKind::Text,
        note: "Meta's smallest Llama 3 (Llama 3.2 licence)",
    },
];

/// Weights in formats the studio does not open (pickles, other frameworks).
const OTHER_FORMATS: &[&str] =
    &[".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".onnx_data", ".ot", ".pb"];

/// The files a download takes when the user has not picked: see the module comment.
pub fn default_selection(files: &[RepoFile]) -> Vec<String> {
    let has = |path: &str| files.iter().any(|f| f.path == path);
    let is_card = |f: &RepoFile| f.path == "README.md";
    let ggufs: Vec<&RepoFile> = files.iter().filter(|f| f.path.to_ascii_lowercase().ends_with(".gguf")).collect();
    if !ggufs.is_empty() {
        let chosen = preferred_gguf(&ggufs);
        return files
            .iter()
            .filter(|f| is_card(f) || Some(f.path.as_str()) == chosen)
            .map(|f| f.path.clone())
            .collect();
    }
    let diffusers = has("model_index.json");
    files
        .iter()
        .filter(|f| {
            let lower = f.path.to_ascii_lowercase();
            if is_card(f) {
                return true;
            }
            if lower.starts_with('.') || OTHER_FORMATS.iter().any(|ext| lower.ends_with(ext)) {
                return false;
            }
            if diffusers
                && (lower.starts_with("safety_checker/") || !lower.contains('/') && lower.ends_with(".safetensors"))
            {
                return false;
            }
            if lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".gif") {
                return false;
            }
            // `x.safetensors` beside `x.fp16.safetensors`: the half-size variant is enough.
            let fp16_twin = lower.strip_suffix(".safetensors").map(|stem| format!("{stem}.fp16.safetensors"));
            !fp16_twin.is_some_and(|twin| files.iter().any(|g| g.path.to_ascii_lowercase() == twin))
        })
        .map(|f| f.path.clone())
        .collect()
}

/// Q4_K_M if the repo has it, else the smallest 4-bit file, else the smallest file.
pub fn preferred_gguf<'a>(ggufs: &[&'a RepoFile]) -> Option<&'a str> {
    let by_size = |f: &&&RepoFile| f.size.unwrap_or(u64::MAX);
    ggufs
        .iter()
        .find(|f| f.quant().as_deref() == Some(PREFERRED))
        .or_else(|| ggufs.iter().filter(|f| f.quant().is_some_and(|q| q.starts_with("Q4"))).min_by_key(by_size))
        .or_else(|| ggufs.iter().min_by_key(by_size))
        .map(|f| f.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Vec<RepoFile> {
        paths.iter().map(|p| RepoFile { path: (*p).into(), size: Some(p.len() as u64), sha256: None }).collect()
    }

    #[test]
    fn a_gguf_repo_takes_q4_k_m_and_the_card() {
        let repo = files(&[".gitattributes", "README.md", "m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q2_K.gguf"]);
        assert_eq!(default_selection(&repo), ["README.md", "m-Q4_K_M.gguf"]);
        let repo = files(&["smollm2-135m-instruct-q8_0.gguf"]);
        assert_eq!(default_selection(&repo), ["smollm2-135m-instruct-q8_0.gguf"]);
    }

    #[test]
    fn a_diffusers_repo_takes_its_fp16_safetensors_folders() {
        let repo = files(&[
            "README.md",
            "model_index.json",
            "sd_turbo.safetensors",
            "v1-5-pruned.ckpt",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin",
            "text_encoder/model.safetensors",
            "tokenizer/vocab.json",
            "safety_checker/model.safetensors",
            "images/example.png",
        ]);
        assert_eq!(
            default_selection(&repo),
            [
                "README.md",
                "model_index.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "text_encoder/model.safetensors",
                "tokenizer/vocab.json"
            ]
        );
        // A LoRA repo: its one safetensors file.
        let repo = files(&["README.md", "pytorch_lora_weights.safetensors", "image.png"]);
        assert_eq!(default_selection(&repo), ["README.md", "pytorch_lora_weights.safetensors"]);
    }

    #[test]
    fn the_catalogue_names_valid_repos_of_every_kind() {
        for entry in CATALOGUE {
            assert!(crate::hub::cache::RepoId::parse(entry.repo).is_ok(), "{}", entry.repo);
        }
        let texts = CATALOGUE.iter().filter(|e| e.kind == EntryKind::Text).count();
        assert!(texts >= 5);
        for kind in [EntryKind::Diffusion, EntryKind::PreviewDecoder, EntryKind::Lora] {
            assert!(CATALOGUE.iter().any(|e| e.kind == kind));
        }
    }
}
