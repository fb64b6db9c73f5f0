//! The project's own character-level GPT as a text model: its alphabet is the
//! tokenizer (one token per character) and every step runs the network over
//! the last `context` characters.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::text::gguf_tokenizer::{ChatMessage, TokenizerError};
use crate::text::gpt::{Gpt, GptConfig};
use crate::text::model::{TextCodec, TextModel, TextModelError};

/// What a char-GPT model folder's manifest holds in `config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CharGptManifest {
    /// Always "char-gpt".
    pub format: String,
    /// Network shape.
    pub gpt: GptConfig,
    /// The alphabet in id order.
    pub alphabet: String,
}

/// Characters ⇄ ids.
pub struct CharCodec {
    alphabet: Vec<char>,
}

impl CharCodec {
    /// A codec over `alphabet` (id = position).
    pub fn new(alphabet: Vec<char>) -> Self {
        Self { alphabet }
    }
}

impl TextCodec for CharCodec {
    fn encode(&self, text: &str, _parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        text.chars()
            .map(|c| {
                self.alphabet.iter().position(|&a| a == c).map(|i| i as u32).ok_or_else(|| {
                    TokenizerError::Library(format!("the character {c:?} is not in this model's alphabet"))
                })
            })
            .collect()
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        Ok(ids.iter().filter_map(|&i| self.alphabet.get(i as usize)).collect())
    }

    fn piece(&self, id: u32) -> String {
        self.alphabet.get(id as usize).map(|c| c.to_string()).unwrap_or_default()
    }

    fn stop_ids(&self) -> &[u32] {
        &[]
    }

    fn vocab_size(&self) -> usize {
        self.alphabet.len()
    }

    fn chat_prompt(&self, _messages: &[ChatMessage]) -> Option<Result<String, TokenizerError>> {
        None
    }
}

/// A trained char-GPT with the sequence it has been fed.
pub struct CharGpt {
    gpt: Gpt,
    codec: CharCodec,
    name: String,
    /// Tokens at positions 0.. (the network is re-run over the last `context`).
    history: Vec<u32>,
    device: Device,
}

impl CharGpt {
    /// Loads `weights` (safetensors) with the shape and alphabet from `manifest`.
    pub fn load(
        name: &str,
        manifest: &CharGptManifest,
        weights: &Path,
        device: &Device,
    ) -> Result<Self, TextModelError> {
        let format = |detail: String| TextModelError::Format { path: weights.to_owned(), detail };
        let mut varmap = VarMap::new();
        let gpt = Gpt::new(&manifest.gpt, VarBuilder::from_varmap(&varmap, DType::F32, device))
            .map_err(|e| format(e.to_string()))?;
        varmap.load(weights).map_err(|e| format(format!("cannot load the weights: {e}")))?;
        let alphabet: Vec<char> = manifest.alphabet.chars().collect();
        if alphabet.len() != manifest.gpt.vocab {
            return Err(format(format!("alphabet has {} characters, vocab {}", alphabet.len(), manifest.gpt.vocab)));
        }
        Ok(Self::from_parts(name, gpt, CharCodec::new(alphabet), device))
    }

    /// A model from a network in memory (tests, a trainer's current weights).
    pub fn from_parts(name: &str, gpt: Gpt, codec: CharCodec, device: &Device) -> Self {
        Self { gpt, codec, name: name.to_owned(), history: Vec::new(), device: device.clone() }
    }
}

impl TextModel for CharGpt {
    fn name(&self) -> &str {
        &self.name
    }

    fn context_len(&self) -> usize {
        // Older characters slide out of the window, so the sequence itself is unbounded.
        usize::MAX / 2
    }

    fn codec(&self) -> &dyn TextCodec {
        &self.codec
    }

    fn reset(&mut self) {
        self.history.clear();
    }

    fn rewinds(&self) -> bool {
        true
    }

    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, TextModelError> {
        self.history.truncate(pos);
        self.history.extend_from_slice(tokens);
        let window = &self.history[self.history.len().saturating_sub(self.gpt.config.context)..];
        let compute = |source| TextModelError::Compute { name: self.name.clone(), source };
        let ids = Tensor::new(window, &self.device).and_then(|t| t.unsqueeze(0)).map_err(compute)?;
        let logits = self.gpt.forward(&ids).map_err(compute)?; // [1, t, vocab]
        let last = logits.get(0).and_then(|l| l.get(window.len() - 1)).map_err(compute)?;
        last.to_vec1().map_err(compute)
    }
}
