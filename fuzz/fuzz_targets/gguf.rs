//! A GGUF file: header and metadata, the llama hyper-parameters, the
//! tokenizer and chat template, and the weights our engine loads.
#![no_main]

use std::io::Cursor;

use candle_core::quantized::gguf_file;
use latent_studio::text::gguf_tokenizer::TextTokenizer;
use latent_studio::text::llama::{LlamaConfig, LlamaWeights, unsupported_reason};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = Cursor::new(data);
    let Ok(content) = gguf_file::Content::read(&mut reader) else { return };
    if let Ok(tokenizer) = TextTokenizer::from_gguf(&content.metadata) {
        if let Ok(ids) = tokenizer.encode("Hello <|im_start|> wörld", true) {
            let _ = tokenizer.decode(&ids);
        }
    }
    if LlamaConfig::from_gguf(&content).is_ok() && unsupported_reason(&content).is_none() {
        let _ = LlamaWeights::load(&content, &mut reader);
    }
});
