//! Textual-inversion embeddings used by name in prompts, as A1111 does:
//! a file in the embeddings folder (`name.safetensors`) holds vectors that
//! stand in for the tokens of its name wherever that name appears. A1111's
//! files hold `emb_params` [n, width] (SD 1.x/2.x) or `clip_l` and `clip_g`
//! (SDXL's two towers); diffusers' hold one tensor under the token. A file
//! whose width fits none of this model's towers is skipped and listed.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::chunks::EmbeddingLookup;
use crate::diffusion::checkpoint::open_tensor_file;
use crate::diffusion::clip_tokenizer::ClipTokenizer;

/// One embedding: its name and, per text tower, its vectors [n, width].
#[derive(Clone, Debug)]
pub struct Embedding {
    pub name: String,
    pub vectors: Vec<Option<Tensor>>,
}

/// The embeddings usable with one model, and the files that were not.
#[derive(Clone, Debug, Default)]
pub struct EmbeddingSet {
    pub items: Vec<Embedding>,
    /// Files skipped, with why.
    pub skipped: Vec<(PathBuf, String)>,
}

/// The vectors of one file per tower width (`widths`: each tower's hidden size).
fn read_vectors(path: &Path, widths: &[usize]) -> Result<Vec<Option<Tensor>>, String> {
    let file = open_tensor_file(path).map_err(|e| e.to_string())?;
    let shapes = file.shapes();
    let read = |name: &str| -> Result<Tensor, String> {
        let t = file.read(name, &Device::Cpu).and_then(|t| t.to_dtype(DType::F32)).map_err(|e| e.to_string())?;
        match t.rank() {
            1 => t.unsqueeze(0).map_err(|e| e.to_string()),
            2 => Ok(t),
            _ => Err(format!("{name} is not a list of vectors ({:?})", t.dims())),
        }
    };
    let by_width = |t: &Tensor, width: usize| t.dims().last() == Some(&width);
    let vectors: Vec<Option<Tensor>> = if shapes.contains_key("clip_l") || shapes.contains_key("clip_g") {
        let (l, g) = (read("clip_l").ok(), read("clip_g").ok());
        widths.iter().map(|&w| [&l, &g].into_iter().flatten().find(|t| by_width(t, w)).cloned()).collect()
    } else {
        let key = if shapes.contains_key("emb_params") {
            "emb_params".to_owned()
        } else if shapes.len() == 1 {
            shapes.keys().next().cloned().unwrap_or_default()
        } else {
            return Err("no emb_params, clip_l/clip_g or single vector tensor".into());
        };
        let t = read(&key)?;
        widths.iter().map(|&w| by_width(&t, w).then(|| t.clone())).collect()
    };
    if vectors.iter().all(Option::is_none) {
        return Err(format!("its vectors fit none of this model's text encoders (widths {widths:?})"));
    }
    Ok(vectors)
}

impl EmbeddingSet {
    /// Every `*.safetensors` embedding in `dirs` (and their subfolders) that fits towers of `widths`.
    pub fn load(dirs: &[PathBuf], widths: &[usize]) -> Self {
        let mut set = Self::default();
        let mut stack = dirs.to_vec();
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors")) {
                    continue;
                }
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                match read_vectors(&path, widths) {
                    Ok(vectors) => set.items.push(Embedding { name, vectors }),
                    Err(why) => set.skipped.push((path, why)),
                }
            }
        }
        set
    }

    /// The lookup for text tower `tower` with its tokenizer.
    pub fn for_tower<'a>(&'a self, tower: usize, tokenizer: &ClipTokenizer) -> TowerEmbeddings<'a> {
        let mut entries: Vec<(Vec<u32>, &'a Embedding, &'a Tensor)> = self
            .items
            .iter()
            .filter_map(|e| Some((tokenizer.tokens(&e.name), e, e.vectors.get(tower)?.as_ref()?)))
            .filter(|(ids, _, _)| !ids.is_empty())
            .collect();
        // The longest name first, as A1111 matches.
        entries.sort_by_key(|(ids, _, _)| std::cmp::Reverse(ids.len()));
        TowerEmbeddings { entries }
    }
}

/// One tower's view of the set.
pub struct TowerEmbeddings<'a> {
    entries: Vec<(Vec<u32>, &'a Embedding, &'a Tensor)>,
}

impl TowerEmbeddings<'_> {
    /// The vectors of an embedding by name.
    pub fn vectors(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(_, e, _)| e.name == name).map(|(_, _, t)| *t)
    }
}

impl EmbeddingLookup for TowerEmbeddings<'_> {
    fn find(&self, tokens: &[u32], position: usize) -> Option<(String, usize, usize)> {
        let rest = tokens.get(position..)?;
        self.entries
            .iter()
            .find(|(ids, _, _)| rest.starts_with(ids))
            .map(|(ids, e, t)| (e.name.clone(), t.dims().first().copied().unwrap_or(1), ids.len()))
    }
}
