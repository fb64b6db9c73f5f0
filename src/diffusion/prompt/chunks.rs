//! A1111's prompt chunks (`sd_hijack_clip.py`'s `tokenize_line`): the
//! weighted pieces are tokenized and laid into chunks of the encoder's
//! length less two (75 for CLIP), each framed by start and end tokens; a
//! chunk that fills up moves the words after its last comma (if that comma
//! is at most 20 tokens back) to the next chunk; `BREAK` ends a chunk
//! early; padding is the end token, and a tokenizer that pads with another
//! token (OpenCLIP's `!`) gets that after the first end token. Each token
//! carries the multiplier its emphasis gave it.

use super::emphasis::{Piece, is_break};
use crate::diffusion::clip_tokenizer::ClipTokenizer;

/// How far back (in tokens) a comma may be for the words after it to move
/// to the next chunk (A1111's `comma_padding_backtrack` default).
pub const COMMA_BACKTRACK: usize = 20;

/// One encoder input: `max_len` token ids and their multipliers.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub tokens: Vec<u32>,
    pub multipliers: Vec<f64>,
}

/// A textual-inversion embedding's place in a chunk: its vectors replace
/// the placeholder tokens from `offset` on.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingFix {
    pub chunk: usize,
    pub offset: usize,
    pub name: String,
}

/// Something that recognises embedding names in token sequences.
pub trait EmbeddingLookup {
    /// The embedding whose name's tokens start at `tokens[position]`:
    /// its name, how many vectors it has and how many tokens its name takes.
    fn find(&self, tokens: &[u32], position: usize) -> Option<(String, usize, usize)>;
}

/// No embeddings.
pub struct NoEmbeddings;

impl EmbeddingLookup for NoEmbeddings {
    fn find(&self, _: &[u32], _: usize) -> Option<(String, usize, usize)> {
        None
    }
}

struct Builder {
    length: usize,
    bos: u32,
    eos: u32,
    chunks: Vec<Chunk>,
    tokens: Vec<u32>,
    multipliers: Vec<f64>,
    last_comma: Option<usize>,
}

impl Builder {
    fn next_chunk(&mut self) {
        let missing = self.length.saturating_sub(self.tokens.len());
        let mut tokens = vec![self.bos];
        tokens.append(&mut self.tokens);
        tokens.extend(std::iter::repeat_n(self.eos, missing + 1));
        let mut multipliers = vec![1.0];
        multipliers.append(&mut self.multipliers);
        multipliers.extend(std::iter::repeat_n(1.0, missing + 1));
        self.chunks.push(Chunk { tokens, multipliers });
        self.last_comma = None;
    }
}

/// The chunks of a prompt's pieces, and the embeddings placed in them.
pub fn chunk_prompt(
    pieces: &[Piece],
    tokenizer: &ClipTokenizer,
    embeddings: &dyn EmbeddingLookup,
) -> (Vec<Chunk>, Vec<EmbeddingFix>) {
    let (bos, eos, pad) = tokenizer.specials();
    let comma = tokenizer.id(",</w>");
    let length = tokenizer.max_len().saturating_sub(2).max(1);
    let mut b =
        Builder { length, bos, eos, chunks: Vec::new(), tokens: Vec::new(), multipliers: Vec::new(), last_comma: None };
    let mut fixes = Vec::new();
    for piece in pieces {
        if is_break(piece) {
            b.next_chunk();
            continue;
        }
        let (text, weight) = piece;
        let tokens = tokenizer.tokens(text);
        let mut position = 0;
        while position < tokens.len() {
            let token = tokens[position];
            if Some(token) == comma {
                b.last_comma = Some(b.tokens.len());
            } else if let Some(comma_at) =
                b.last_comma.filter(|&c| b.tokens.len() == length && length - c <= COMMA_BACKTRACK)
            {
                let moved_tokens = b.tokens.split_off(comma_at + 1);
                let moved_multipliers = b.multipliers.split_off(comma_at + 1);
                b.next_chunk();
                b.tokens = moved_tokens;
                b.multipliers = moved_multipliers;
            }
            if b.tokens.len() == length {
                b.next_chunk();
            }
            match embeddings.find(&tokens, position) {
                None => {
                    b.tokens.push(token);
                    b.multipliers.push(*weight);
                    position += 1;
                }
                Some((name, vectors, name_tokens)) => {
                    if b.tokens.len() + vectors > length {
                        b.next_chunk();
                    }
                    fixes.push(EmbeddingFix { chunk: b.chunks.len(), offset: b.tokens.len() + 1, name });
                    b.tokens.extend(std::iter::repeat_n(0, vectors));
                    b.multipliers.extend(std::iter::repeat_n(*weight, vectors));
                    position += name_tokens.max(1);
                }
            }
        }
    }
    if !b.tokens.is_empty() || b.chunks.is_empty() {
        b.next_chunk();
    }
    if pad != eos {
        for chunk in &mut b.chunks {
            if let Some(end) = chunk.tokens.iter().position(|&t| t == eos) {
                chunk.tokens[end + 1..].fill(pad);
            }
        }
    }
    (b.chunks, fixes)
}
