//! The tokenizer and chat template stored in a GGUF file's metadata: a
//! GPT-2-style byte-level BPE (vocabulary, merges, control tokens) and the
//! model's Jinja chat template. Nothing is downloaded: a GGUF file is
//! self-contained.

use std::collections::{HashMap, HashSet};

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

/// What went wrong reading or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A metadata key is missing or has the wrong type.
    #[error("GGUF metadata: {0}")]
    Metadata(String),
    /// The tokenizer library refused the vocabulary or an input.
    #[error("tokenizer: {0}")]
    Library(String),
    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Control tokens that end a turn in the chat formats we know; generation
/// stops on them as well as on the file's end-of-sequence token.
const END_OF_TURN: [&str; 5] = ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"];

pub use crate::spec::text::ChatMessage;

/// A byte-level BPE tokenizer built from GGUF metadata.
pub struct TextTokenizer {
    /// Matches control tokens written in the text.
    inner: Tokenizer,
    /// Treats all text as text.
    plain: Tokenizer,
    /// Id → token text as stored (byte-level alphabet, e.g. `Ġthe`).
    pieces: Vec<String>,
    /// Control and user-defined tokens (matched whole in text when asked).
    special: HashSet<u32>,
    bos: Option<u32>,
    add_bos: bool,
    stop: Vec<u32>,
    chat_template: Option<String>,
}

fn get<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value, TokenizerError> {
    md.get(key).ok_or_else(|| TokenizerError::Metadata(format!("{key} is missing")))
}

fn strings(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>, TokenizerError> {
    let bad = |e: candle_core::Error| TokenizerError::Metadata(format!("{key}: {e}"));
    get(md, key)?.to_vec().map_err(bad)?.iter().map(|v| v.to_string().cloned().map_err(bad)).collect()
}

fn optional_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

impl TextTokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata (model "gpt2").
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self, TokenizerError> {
        let model =
            get(md, "tokenizer.ggml.model")?.to_string().map_err(|e| TokenizerError::Metadata(e.to_string()))?;
        if model != "gpt2" {
            return Err(TokenizerError::Metadata(format!(
                "tokenizer model \"{model}\" is not supported (only byte-level BPE, \"gpt2\")"
            )));
        }
        let pieces = strings(md, "tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings(md, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
                None => Err(TokenizerError::Metadata(format!("merge \"{m}\" is not two tokens"))),
            })
            .collect::<Result<_, _>>()?;
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .and_then(|v| v.iter().map(|t| t.to_i32()).collect())
                .map_err(|e| TokenizerError::Metadata(format!("tokenizer.ggml.token_type: {e}")))?,
            None => vec![1; pieces.len()],
        };
        let vocab: tokenizers::models::bpe::Vocab =
            pieces.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        // No word cache: tokenizers 0.23 keeps it in a thread-local map that
        // never forgets a dropped tokenizer's words, so a text thread that
        // loads model after model would grow without bound (found by fuzzing;
        // re-merging a prompt's words costs microseconds).
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .cache_capacity(0)
            .build()
            .map_err(|e| TokenizerError::Library(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(md)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let plain = inner.clone();
        let special: HashSet<u32> = types
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(**t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|(i, _)| i as u32)
            .collect();
        let mut special_sorted: Vec<u32> = special.iter().copied().collect();
        special_sorted.sort_unstable();
        let added: Vec<AddedToken> =
            special_sorted.iter().map(|&i| AddedToken::from(pieces[i as usize].clone(), true)).collect();
        inner.add_special_tokens(added).map_err(|e| TokenizerError::Library(e.to_string()))?;

        let eos = optional_u32(md, "tokenizer.ggml.eos_token_id");
        let mut stop: Vec<u32> = eos.into_iter().collect();
        for name in END_OF_TURN {
            if let Some(i) = pieces.iter().position(|p| p == name).map(|i| i as u32)
                && special.contains(&i)
                && !stop.contains(&i)
            {
                stop.push(i);
            }
        }
        let chat_template = md.get("tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned();
        Ok(Self {
            inner,
            plain,
            pieces,
            special,
            bos: optional_u32(md, "tokenizer.ggml.bos_token_id"),
            add_bos: md.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false),
            stop,
            chat_template,
        })
    }

    /// Token ids of `text`. With `parse_special`, control tokens written in
    /// the text (`<|im_start|>`) become their ids; otherwise they are plain
    /// text. A beginning-of-sequence token is added if the file asks for one.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if self.add_bos {
            ids.extend(self.bos);
        }
        let tokenizer = if parse_special { &self.inner } else { &self.plain };
        let enc = tokenizer.encode(text, false).map_err(|e| TokenizerError::Library(e.to_string()))?;
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// The text of `ids` (control tokens included as written).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, false).map_err(|e| TokenizerError::Library(e.to_string()))
    }

    /// What token `id` stands for, as readable text (`Ġ` shown as a space);
    /// a token that is part of a multi-byte character shows its bytes, `<0xE2>`.
    pub fn piece(&self, id: u32) -> String {
        let Some(stored) = self.pieces.get(id as usize) else { return String::new() };
        if self.special.contains(&id) {
            return stored.clone();
        }
        match self.decode(&[id]) {
            Ok(text) if !text.contains('\u{FFFD}') => text,
            _ => stored.chars().filter_map(byte_of_char).map(|b| format!("<0x{b:02X}>")).collect(),
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// Ids that end generation.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop
    }

    /// Whether the file carries a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Renders `messages` with the file's chat template (the model's own
    /// default system prompt included where the template adds one).
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let Some(template) = &self.chat_template else {
            return Err(TokenizerError::Template("the model file has no chat template".into()));
        };
        let mut env = minijinja::Environment::new();
        env.add_template("chat", template).map_err(|e| TokenizerError::Template(e.to_string()))?;
        let bos = self.bos.and_then(|b| self.pieces.get(b as usize)).cloned().unwrap_or_default();
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
        };
        env.get_template("chat").and_then(|t| t.render(ctx)).map_err(|e| TokenizerError::Template(e.to_string()))
    }
}

/// The byte that GPT-2's byte-level alphabet writes as `c` (the inverse of
/// its `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes for U+0100 onwards, in order).
fn byte_of_char(c: char) -> Option<u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let code = c as u32;
    if code < 256 && printable(code as u8) {
        return Some(code as u8);
    }
    let n = code.checked_sub(256)? as usize;
    (0..=255u8).filter(|&b| !printable(b)).nth(n)
}

/// The pre-tokenizer llama.cpp names in `tokenizer.ggml.pre`: every "smollm"
/// and GPT-2-family vocabulary splits with GPT-2's regex; SmolLM2's first
/// splits digits one by one.
fn pre_tokenizer(md: &HashMap<String, Value>) -> PreTokenizerWrapper {
    let pre = md.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str).unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        _ => byte_level.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::byte_of_char;

    #[test]
    fn byte_level_alphabet_inverts() {
        // GPT-2's alphabet: 'Ġ' (U+0120) is the space byte, 'Ċ' (U+010A) the newline, 'a' itself.
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('a'), Some(b'a'));
        assert_eq!(byte_of_char('Ā'), Some(0)); // U+0100 is byte 0
        let all: std::collections::HashSet<u8> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
            .into_iter()
            .filter_map(byte_of_char)
            .collect();
        assert_eq!(all.len(), 256, "every byte has exactly one character");
    }
}
