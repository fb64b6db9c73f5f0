//! Language models: the `TextModel` interface (`model`), llama-family GGUF
//! files on our own engine (`llama/`) or candle's (`gguf_llama`) with the
//! tokenizer and chat template from the file (`gguf_tokenizer`), our
//! character-level GPT (`gpt`, `char_gpt`) with its training (`train`) and
//! model folder (`export`), and generation: sampling (`sampling`), the
//! streamed loop (`generate`) and saved text (`saved_text`).

pub mod char_gpt;
pub mod export;
pub mod generate;
pub mod gguf_llama;
pub mod gguf_tokenizer;
pub mod gpt;
pub mod llama;
pub mod model;
pub mod run;
pub mod sampling;
pub mod saved_text;
pub mod train;
