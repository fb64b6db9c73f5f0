//! Trains a CLIP-style BPE vocabulary on a set of captions and writes it as a
//! diffusers `tokenizer/` folder, so our own text-to-image model's tokenizer
//! is read by the same code as Stable Diffusion's (`ClipTokenizer`).
//!
//! The vocabulary has CLIP's layout: the 256 byte characters, the same with
//! `</w>`, one entry per merge, then `<|startoftext|>` and `<|endoftext|>`.

use std::collections::HashMap;
use std::path::Path;

use crate::diffusion::clip_tokenizer::{BOS, END_OF_WORD, EOS, TokenizerError, byte_chars, merge_word, word_symbols};

/// A trained vocabulary: tokens in id order and the merges in rank order.
#[derive(Clone, Debug)]
pub struct ClipBpe {
    pub tokens: Vec<String>,
    pub merges: Vec<(String, String)>,
}

/// Learns up to `max_merges` merges from the captions' words, most frequent
/// pair first (ties broken by the pair's text, so training is deterministic);
/// stops early when no pair occurs twice.
pub fn train_clip_bpe(captions: &[String], max_merges: usize) -> ClipBpe {
    let mut words: HashMap<Vec<String>, usize> = HashMap::new();
    for caption in captions {
        for word in word_symbols(caption) {
            *words.entry(word).or_default() += 1;
        }
    }
    let mut words: Vec<(Vec<String>, usize)> = words.into_iter().collect();
    words.sort();
    let mut merges = Vec::new();
    while merges.len() < max_merges {
        let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
        for (symbols, n) in &words {
            for pair in symbols.windows(2) {
                *counts.entry((&pair[0], &pair[1])).or_default() += n;
            }
        }
        let best = counts.into_iter().filter(|(_, n)| *n >= 2).max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
        let Some(((a, b), _)) = best else { break };
        let pair = (a.to_owned(), b.to_owned());
        let ranks = HashMap::from([(pair.clone(), 0)]);
        for (symbols, _) in &mut words {
            *symbols = merge_word(std::mem::take(symbols), &ranks);
        }
        merges.push(pair);
    }
    let bytes: Vec<String> = byte_chars().into_iter().map(|(_, c)| c.to_string()).collect();
    let mut tokens = bytes.clone();
    tokens.extend(bytes.iter().map(|b| format!("{b}{END_OF_WORD}")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.push(BOS.to_owned());
    tokens.push(EOS.to_owned());
    ClipBpe { tokens, merges }
}

impl ClipBpe {
    /// Writes `vocab.json`, `merges.txt`, `tokenizer_config.json` and
    /// `special_tokens_map.json` into `dir` (as `CLIPTokenizer.save_pretrained`
    /// lays them out), for sequences of `max_len` tokens.
    /// CLIP's own vocabulary from OpenAI's `bpe_simple_vocab_16e6.txt.gz`:
    /// the 256 byte characters, the same with `</w>`, one entry per merge
    /// (the file's first 48,894 after its header) and the two special
    /// tokens, 49,408 in all, in the order transformers' `vocab.json` has.
    pub fn from_clip_vocab(path: &Path) -> Result<Self, TokenizerError> {
        use std::io::Read;
        const MERGES: usize = 49152 - 256 - 2;
        let error = |message: String| TokenizerError { path: path.to_owned(), message };
        let file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| error(format!("not CLIP's gzipped vocabulary: {e}")))?;
        let merges: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .take(MERGES)
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
            .collect();
        if merges.len() != MERGES {
            return Err(error(format!("has {} merges; CLIP's has {MERGES}", merges.len())));
        }
        let chars: Vec<String> = byte_chars().into_iter().map(|(_, c)| c.to_string()).collect();
        let mut tokens: Vec<String> = chars.clone();
        tokens.extend(chars.iter().map(|c| format!("{c}{END_OF_WORD}")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        tokens.extend([BOS.to_owned(), EOS.to_owned()]);
        Ok(Self { tokens, merges })
    }

    pub fn save(&self, dir: &Path, max_len: usize) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let vocab: serde_json::Map<String, serde_json::Value> =
            self.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i.into())).collect();
        std::fs::write(dir.join("vocab.json"), serde_json::to_string_pretty(&vocab)?)?;
        let mut merges = String::from("#version: 0.2\n");
        for (a, b) in &self.merges {
            merges.push_str(&format!("{a} {b}\n"));
        }
        std::fs::write(dir.join("merges.txt"), merges)?;
        let specials = serde_json::json!({
            "bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS,
        });
        let mut config = specials.clone();
        config["model_max_length"] = max_len.into();
        config["tokenizer_class"] = "CLIPTokenizer".into();
        config["do_lower_case"] = true.into();
        config["clean_up_tokenization_spaces"] = false.into();
        std::fs::write(dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&config)?)?;
        std::fs::write(dir.join("special_tokens_map.json"), serde_json::to_string_pretty(&specials)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::clip_tokenizer::ClipTokenizer;

    #[test]
    fn frequent_words_become_single_tokens_and_round_trip_through_the_files() {
        let captions: Vec<String> =
            ["red heart", "blue heart", "cat face", "grinning cat", "heart with ribbon"].map(String::from).to_vec();
        let bpe = train_clip_bpe(&captions, 200);
        assert_eq!(bpe.tokens.len(), 512 + bpe.merges.len() + 2);
        let dir = tempfile::tempdir().unwrap();
        bpe.save(dir.path(), 16).unwrap();
        let tok = ClipTokenizer::from_dir(dir.path()).unwrap();
        assert_eq!(tok.max_len(), 16);
        let heart = bpe.tokens.iter().position(|t| t == "heart</w>").unwrap() as u32;
        let ids = tok.encode("  HEART ");
        assert_eq!(ids.len(), 16);
        assert_eq!(ids[0] as usize, bpe.tokens.len() - 2);
        assert_eq!(ids[1], heart);
        assert_eq!(ids[2] as usize, bpe.tokens.len() - 1);
        // Unseen words fall back to byte pieces, never to nothing.
        assert!(tok.tokens("zebra").len() >= 2);
    }
}
