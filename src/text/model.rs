//! The family-agnostic face of a language model that the text panel, the CLI
//! and the worker use: a tokenizer and next-token logits.

use std::path::PathBuf;

use crate::text::gguf_tokenizer::{ChatMessage, TokenizerError};

/// Errors from loading or running a language model; each names the file or the cause.
#[derive(Debug, thiserror::Error)]
pub enum TextModelError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// The file is not a complete GGUF file of a model we can run.
    #[error("{path}: {detail}")]
    Format { path: PathBuf, detail: String },
    /// The tokenizer or chat template in the file is unusable.
    #[error("{path}: {source}")]
    Tokenizer { path: PathBuf, source: TokenizerError },
    /// Tokenizing or templating a request failed.
    #[error(transparent)]
    Request(#[from] TokenizerError),
    /// The prompt does not leave room for a single new token.
    #[error("the prompt is {tokens} tokens long; this model's context holds {context}")]
    PromptTooLong { tokens: usize, context: usize },
    /// The model refused the input (an unknown token id, a gap in positions).
    #[error("model {name}: {detail}")]
    Refused { name: String, detail: String },
    /// The numeric backend failed while running the model.
    #[error("model {name}: {source}")]
    Compute { name: String, source: candle_core::Error },
}

/// Text ⇄ token ids for one model.
pub trait TextCodec {
    /// Token ids of `text`; with `parse_special`, control tokens written in
    /// the text (such as `<|im_start|>`) become their ids.
    fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError>;
    /// The text of `ids`.
    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError>;
    /// What one token stands for, readable (for the token view).
    fn piece(&self, id: u32) -> String;
    /// Ids that end generation.
    fn stop_ids(&self) -> &[u32];
    /// How many token ids there are (ids are `0..vocab_size`).
    fn vocab_size(&self) -> usize;
    /// The prompt for a chat, in the model's own template, ready for the
    /// assistant's answer; `None` if the model has no chat template.
    fn chat_prompt(&self, messages: &[ChatMessage]) -> Option<Result<String, TokenizerError>>;
}

/// A language model that predicts the next token.
pub trait TextModel: Send {
    /// Display name.
    fn name(&self) -> &str;
    /// Most tokens (prompt + output) one sequence may hold.
    fn context_len(&self) -> usize;
    /// Its tokenizer.
    fn codec(&self) -> &dyn TextCodec;
    /// What runs the model (kernels, threads), for benchmark tables.
    fn engine(&self) -> &str {
        "candle"
    }
    /// Forgets the cached sequence: the next `forward` starts at position 0.
    fn reset(&mut self);
    /// Whether `forward` may start before the end of the cached sequence
    /// (keeping only the positions before it), so a prompt that shares a
    /// prefix with the cached one reuses it.
    fn rewinds(&self) -> bool {
        false
    }
    /// Feeds `tokens` at positions `pos..` (after the cached ones) and
    /// returns the logits of the token that follows them.
    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, TextModelError>;
}
