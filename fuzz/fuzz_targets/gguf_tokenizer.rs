//! The byte-level BPE built from GGUF metadata, with vocabulary and merges
//! from the input (one token per line; merges from the "a b" lines).
#![no_main]

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use latent_studio::text::gguf_tokenizer::{ChatMessage, TextTokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (head, sample) = text.split_once('\0').unwrap_or((text, "Hello world"));
    let tokens: Vec<&str> = head.lines().collect();
    let merges: Vec<Value> = tokens.iter().filter(|t| t.contains(' ')).map(|t| Value::String((*t).to_owned())).collect();
    let mut md = HashMap::new();
    md.insert("tokenizer.ggml.model".to_owned(), Value::String("gpt2".into()));
    md.insert(
        "tokenizer.ggml.tokens".to_owned(),
        Value::Array(tokens.iter().map(|t| Value::String((*t).to_owned())).collect()),
    );
    md.insert("tokenizer.ggml.merges".to_owned(), Value::Array(merges));
    md.insert(
        "tokenizer.ggml.token_type".to_owned(),
        Value::Array(tokens.iter().map(|t| Value::I32(if t.starts_with("<|") { 3 } else { 1 })).collect()),
    );
    md.insert("tokenizer.ggml.eos_token_id".to_owned(), Value::U32(0));
    if let Some(template) = sample.strip_prefix("{%") {
        md.insert("tokenizer.chat_template".to_owned(), Value::String(format!("{{%{template}")));
    }
    let Ok(tokenizer) = TextTokenizer::from_gguf(&md) else { return };
    for special in [false, true] {
        if let Ok(ids) = tokenizer.encode(sample, special) {
            let _ = tokenizer.decode(&ids);
            ids.iter().for_each(|&id| drop(tokenizer.piece(id)));
        }
    }
    let chat = [ChatMessage { role: "user".into(), content: sample.into() }];
    let _ = tokenizer.apply_chat_template(&chat, true);
});
