//! CLIP's tokenizer from a folder's `vocab.json`, `merges.txt` and
//! `tokenizer_config.json` (the input's first three NUL-separated parts),
//! then the fourth part encoded.
#![no_main]

use std::path::Path;

use latent_studio::diffusion::clip_tokenizer::ClipTokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let mut parts = text.split('\0');
    let (vocab, merges, config, prompt) = (parts.next(), parts.next(), parts.next(), parts.next());
    let (Some(vocab), Some(merges)) = (vocab, merges) else { return };
    let config = config.filter(|c| !c.is_empty());
    let Ok(tokenizer) = ClipTokenizer::from_texts(Path::new("tokenizer"), vocab, merges, config) else { return };
    let ids = tokenizer.encode(prompt.unwrap_or("a photo of a cat"));
    assert_eq!(ids.len(), tokenizer.max_len());
});
