//! CLIP's byte-level BPE tokenizer, read from a diffusers `tokenizer/` folder
//! (`vocab.json`, `merges.txt`, `tokenizer_config.json`) as Stable Diffusion's
//! text encoders expect it: lower-cased words, `</w>` marking a word's end,
//! `<|startoftext|>` … `<|endoftext|>`, padded to the model's length. The
//! same files are what our own emoji model's tokenizer is trained into
//! (`diffusion/train_bpe.rs`), so one reader serves both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;

/// The start-of-text token.
pub const BOS: &str = "<|startoftext|>";
/// The end-of-text token (also CLIP's unknown and, for SD 1.x, padding token).
pub const EOS: &str = "<|endoftext|>";
/// Marks the last symbol of a word.
pub const END_OF_WORD: &str = "</w>";
/// CLIP's pre-tokenizer: special tokens, contractions, letter runs, single digits, other runs.
const PATTERN: &str = r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

/// A tokenizer folder that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct TokenizerError {
    pub path: PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl Into<String>) -> TokenizerError {
    TokenizerError { path: path.to_owned(), message: message.into() }
}

/// GPT-2/CLIP's reversible map from bytes to printable characters, in the
/// order CLIP lists them (printable bytes first, then the rest from U+0100).
pub fn byte_chars() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut pairs: Vec<(u8, char)> = (0..=255u8).filter(|b| printable(*b)).map(|b| (b, char::from(b))).collect();
    for (next, b) in (256u32..).zip((0..=255u8).filter(|b| !printable(*b))) {
        pairs.push((b, char::from_u32(next).unwrap_or('?')));
    }
    pairs
}

/// Lower-cased text with runs of whitespace collapsed, as CLIP cleans
/// prompts; curly quotes become straight and HTML's character entities are
/// decoded, the parts of ftfy's `fix_text` and `html.unescape` that
/// OpenCLIP's and transformers' tokenizers apply which prompts meet in
/// practice (ftfy's mojibake repair is left out).
pub fn clean(text: &str) -> String {
    let straight: String = text
        .chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' => '"',
            other => other,
        })
        .collect();
    let unescaped = ["&quot;", "&#39;", "&lt;", "&gt;", "&amp;"]
        .iter()
        .zip(["\"", "'", "<", ">", "&"])
        .fold(straight, |t, (entity, c)| t.replace(entity, c));
    unescaped.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The words of cleaned text, each as its byte characters with `</w>` on the last.
pub fn word_symbols(text: &str) -> Vec<Vec<String>> {
    // Compiled once: prompts are tokenized piece by piece, chunk by chunk.
    static COMPILED: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    let Some(pattern) = COMPILED.get_or_init(|| Regex::new(PATTERN).ok()) else { return Vec::new() };
    let mut map = [' '; 256];
    for (b, c) in byte_chars() {
        map[b as usize] = c;
    }
    pattern
        .find_iter(&clean(text))
        .map(|m| {
            let mut symbols: Vec<String> = m.as_str().bytes().map(|b| map[b as usize].to_string()).collect();
            if let Some(last) = symbols.last_mut() {
                last.push_str(END_OF_WORD);
            }
            symbols
        })
        .collect()
}

/// Applies merges (pair → rank, lower first) to one word until none applies.
pub fn merge_word(mut symbols: Vec<String>, ranks: &HashMap<(String, String), usize>) -> Vec<String> {
    loop {
        let best = symbols
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| ranks.get(&(w[0].clone(), w[1].clone())).map(|r| (*r, i)))
            .min();
        let Some((_, first)) = best else { return symbols };
        let (a, b) = (symbols[first].clone(), symbols[first + 1].clone());
        let mut merged = Vec::with_capacity(symbols.len());
        let mut i = 0;
        while i < symbols.len() {
            if i + 1 < symbols.len() && symbols[i] == a && symbols[i + 1] == b {
                merged.push(format!("{a}{b}"));
                i += 2;
            } else {
                merged.push(symbols[i].clone());
                i += 1;
            }
        }
        symbols = merged;
    }
}

/// A loaded CLIP tokenizer.
#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    bos: u32,
    eos: u32,
    pad: u32,
    max_len: usize,
}

/// `"x"` or `{"content": "x"}`, as tokenizer configs write special tokens.
fn token_text(value: &serde_json::Value) -> Option<String> {
    value.as_str().map(str::to_owned).or_else(|| value.get("content")?.as_str().map(str::to_owned))
}

impl ClipTokenizer {
    /// Reads `dir/vocab.json`, `dir/merges.txt` and, if present, the
    /// padding token and length from `dir/tokenizer_config.json` (defaults:
    /// `<|endoftext|>`, 77).
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| error(&path, e.to_string()))
        };
        let config = read("tokenizer_config.json").ok();
        Self::from_texts(dir, &read("vocab.json")?, &read("merges.txt")?, config.as_deref())
    }

    /// The tokenizer from the texts of `vocab.json`, `merges.txt` and
    /// optionally `tokenizer_config.json`; errors name those files in `dir`.
    pub fn from_texts(dir: &Path, vocab: &str, merges: &str, config: Option<&str>) -> Result<Self, TokenizerError> {
        let vocab_path = dir.join("vocab.json");
        let vocab: HashMap<String, u32> =
            serde_json::from_str(vocab).map_err(|e| error(&vocab_path, format!("not a token → id map: {e}")))?;
        let merges_path = dir.join("merges.txt");
        let mut ranks = HashMap::new();
        // The first line is a version header; HF's CLIPTokenizer skips it.
        for (rank, line) in merges.lines().skip(1).filter(|l| !l.trim().is_empty()).enumerate() {
            let Some((a, b)) = line.split_once(' ') else {
                return Err(error(&merges_path, format!("line {} is not \"a b\": {line:?}", rank + 2)));
            };
            ranks.insert((a.to_owned(), b.to_owned()), rank);
        }
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match config {
            Some(text) => serde_json::from_str(text).map_err(|e| error(&config_path, e.to_string()))?,
            None => serde_json::Value::Null,
        };
        let id = |token: &str| {
            vocab.get(token).copied().ok_or_else(|| error(&vocab_path, format!("has no {token:?} token")))
        };
        let pad_text = config.get("pad_token").and_then(token_text).unwrap_or_else(|| EOS.to_owned());
        let max_len = config.get("model_max_length").and_then(|v| v.as_u64()).filter(|n| (3..=4096).contains(n));
        Ok(Self {
            bos: id(BOS)?,
            eos: id(EOS)?,
            pad: id(&pad_text)?,
            max_len: max_len.unwrap_or(77) as usize,
            vocab,
            ranks,
        })
    }

    /// CLIP's own tokenizer from OpenAI's `bpe_simple_vocab_16e6.txt.gz`
    /// (what single-file checkpoints leave out): the vocabulary is the 256
    /// byte characters, the same with `</w>`, one entry per merge (the
    /// file's first 48,894 after its header) and the two special tokens,
    /// 49,408 in all, as transformers' `vocab.json` lists them. OpenCLIP's
    /// towers (SD 2.x, SDXL's second) pad with `!` (`pad_with_zero`).
    pub fn from_clip_bpe(path: &Path, pad_with_zero: bool) -> Result<Self, TokenizerError> {
        let bpe = crate::diffusion::train_bpe::ClipBpe::from_clip_vocab(path)?;
        let vocab: HashMap<String, u32> = bpe.tokens.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let ranks = bpe.merges.into_iter().enumerate().map(|(rank, pair)| (pair, rank)).collect();
        let id = |token: &str| vocab.get(token).copied().ok_or_else(|| error(path, format!("has no {token:?} token")));
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        let pad = if pad_with_zero { 0 } else { eos };
        Ok(Self { vocab, ranks, bos, eos, pad, max_len: 77 })
    }

    /// The ids of the text's tokens, without start, end or padding.
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        word_symbols(text)
            .into_iter()
            .flat_map(|word| merge_word(word, &self.ranks))
            .map(|piece| self.vocab.get(&piece).copied().unwrap_or(self.eos))
            .collect()
    }

    /// `<|startoftext|>`, the tokens (cut to fit), `<|endoftext|>`, then padding: `max_len` ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.bos];
        ids.extend(self.tokens(text).into_iter().take(self.max_len - 2));
        ids.push(self.eos);
        ids.resize(self.max_len, self.pad);
        ids
    }

    /// The start, end and padding ids.
    pub fn specials(&self) -> (u32, u32, u32) {
        (self.bos, self.eos, self.pad)
    }

    /// The id of one vocabulary entry (such as `",</w>"`).
    pub fn id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Sequence length the text encoder takes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_printable_characters() {
        let pairs = byte_chars();
        assert_eq!(pairs.len(), 256);
        let chars: std::collections::HashSet<char> = pairs.iter().map(|p| p.1).collect();
        assert_eq!(chars.len(), 256);
        assert!(pairs.iter().all(|(_, c)| !c.is_whitespace() && !c.is_control()));
        assert_eq!(pairs[0], (b'!', '!'));
        // Space is the 33rd non-printable byte: U+0100 + 32.
        assert!(pairs.contains(&(b' ', '\u{120}')));
    }

    #[test]
    fn words_split_as_clip_does() {
        let words = word_symbols("  A  Cat's 42 paws!!");
        let joined: Vec<String> = words.iter().map(|w| w.concat()).collect();
        assert_eq!(joined, ["a</w>", "cat</w>", "'s</w>", "4</w>", "2</w>", "paws</w>", "!!</w>"]);
    }

    #[test]
    fn merges_apply_by_rank() {
        let ranks: HashMap<(String, String), usize> = [(("c", "a"), 1), (("a", "t</w>"), 0), (("c", "at</w>"), 2)]
            .into_iter()
            .map(|((a, b), r)| ((a.to_owned(), b.to_owned()), r))
            .collect();
        let word = vec!["c".to_owned(), "a".to_owned(), "t</w>".to_owned()];
        assert_eq!(merge_word(word, &ranks), ["cat</w>"]);
    }
}
