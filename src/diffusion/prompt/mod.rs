//! Prompts as AUTOMATIC1111 reads them: `emphasis` (weights from brackets,
//! `BREAK`), `chunks` (token chunks of the encoder's length with a
//! multiplier per token, split at commas as A1111 does) and `extra`
//! (`<lora:name:weight>` tags taken out of the text).

pub mod chunks;
pub mod embeddings;
pub mod emphasis;
pub mod extra;
