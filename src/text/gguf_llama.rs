//! Llama-family language models from GGUF files: SmolLM2 as shipped, and any
//! other llama- or qwen2-architecture GGUF a user opens. On the CPU, files
//! whose tensor types our kernels cover run on `text::llama`; the rest (rarer
//! quantizations, GPUs) run through candle-transformers' quantized llama or
//! qwen2. Tokenizer and chat template come from the file's metadata.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use candle_transformers::models::quantized_qwen2::ModelWeights as Qwen2Weights;

use crate::text::gguf_tokenizer::{ChatMessage, TextTokenizer, TokenizerError};
use crate::text::llama::weights::Architecture;
use crate::text::llama::{KvPrecision, LlamaRunner, LlamaWeights, unsupported_reason};
use crate::text::model::{TextCodec, TextModel, TextModelError};

/// Which implementation runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// Our kernels where they cover the file and the device is the CPU, else candle.
    #[default]
    Auto,
    /// candle-transformers' quantized llama (for comparisons).
    Candle,
}

/// How to load a GGUF model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    pub engine: EngineChoice,
    /// How our engine's KV cache stores keys and values (candle's is always f32).
    pub kv_cache: KvPrecision,
}

enum Engine {
    Native(Box<LlamaRunner>),
    Candle { weights: Box<CandleWeights>, device: Device },
}

/// candle-transformers' model for the file's architecture.
enum CandleWeights {
    Llama(ModelWeights),
    Qwen2(Qwen2Weights),
}

impl CandleWeights {
    fn load(
        arch: Architecture,
        content: gguf_file::Content,
        reader: &mut BufReader<File>,
        device: &Device,
    ) -> candle_core::Result<Self> {
        Ok(match arch {
            Architecture::Llama => Self::Llama(ModelWeights::from_gguf(content, reader, device)?),
            Architecture::Qwen2 => Self::Qwen2(Qwen2Weights::from_gguf(content, reader, device)?),
        })
    }

    fn forward(&mut self, input: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Llama(w) => w.forward(input, pos),
            Self::Qwen2(w) => w.forward(input, pos),
        }
    }

    fn clear_kv_cache(&mut self) {
        match self {
            Self::Llama(w) => w.clear_kv_cache(),
            Self::Qwen2(w) => w.clear_kv_cache(),
        }
    }
}

/// A quantized llama model with its tokenizer.
pub struct GgufLlama {
    engine: Engine,
    /// Which engine runs it and why, for benchmarks and logs.
    engine_note: String,
    tokenizer: TextTokenizer,
    name: String,
    context: usize,
}

impl GgufLlama {
    /// Reads `path`: checks the header and architecture before loading tensors,
    /// so a wrong or truncated file gets a message that says so.
    pub fn load(path: &Path, device: &Device) -> Result<Self, TextModelError> {
        Self::load_with(path, device, LoadOptions::default())
    }

    /// [`GgufLlama::load`] with a choice of engine.
    pub fn load_with(path: &Path, device: &Device, options: LoadOptions) -> Result<Self, TextModelError> {
        let io = |e: std::io::Error| TextModelError::Io { path: path.to_owned(), detail: e.to_string() };
        let format = |detail: String| TextModelError::Format { path: path.to_owned(), detail };
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| format(format!("not a readable GGUF file ({e}); it may be truncated or corrupt")))?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let Some(arch) = Architecture::from_name(&arch) else {
            return Err(format(format!(
                "architecture \"{arch}\" is not supported: this version runs llama and qwen2 GGUF models"
            )));
        };
        // Every tensor must lie inside the file: a cut-off download fails here, not mid-load.
        let data_end = content
            .tensor_infos
            .values()
            .map(|t| {
                let bytes = t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size();
                content.tensor_data_offset + t.offset + bytes as u64
            })
            .max()
            .unwrap_or(0);
        if data_end > file_len {
            return Err(format(format!("the file is truncated: its tensors need {data_end} bytes, it has {file_len}")));
        }
        let tokenizer = TextTokenizer::from_gguf(&content.metadata)
            .map_err(|source| TextModelError::Tokenizer { path: path.to_owned(), source })?;
        let trained_context = content
            .metadata
            .get(&format!("{}.context_length", arch.name()))
            .and_then(|v| v.to_u32().ok())
            .map_or(MAX_SEQ_LEN, |c| c as usize);
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let native_blocker = match (options.engine, device) {
            (EngineChoice::Candle, _) => Some("candle engine requested".to_owned()),
            (_, Device::Cpu) => unsupported_reason(&content),
            _ => Some("the native kernels run on the CPU only".to_owned()),
        };
        let (engine, engine_note, context) = match native_blocker {
            None => {
                let weights = LlamaWeights::load(&content, &mut reader).map_err(|e| format(e.0))?;
                let threads = candle_core::utils::get_num_threads();
                let note = match options.kv_cache {
                    KvPrecision::F32 => format!("native kernels, {threads} threads"),
                    kv => format!("native kernels, {threads} threads, {} KV cache", kv.name()),
                };
                let runner = LlamaRunner::new(weights, threads, options.kv_cache);
                (Engine::Native(Box::new(runner)), note, trained_context)
            }
            Some(reason) => {
                let weights = CandleWeights::load(arch, content, &mut reader, device)
                    .map_err(|e| format(format!("cannot load the weights: {e}")))?;
                // candle's llama rotary tables stop at MAX_SEQ_LEN positions (qwen2's at the trained context).
                let context =
                    if arch == Architecture::Llama { trained_context.min(MAX_SEQ_LEN) } else { trained_context };
                let engine = Engine::Candle { weights: Box::new(weights), device: device.clone() };
                (engine, format!("candle-transformers ({reason})"), context)
            }
        };
        Ok(Self { engine, engine_note, tokenizer, name, context })
    }

    /// Which engine runs the model, and why.
    pub fn engine_note(&self) -> &str {
        &self.engine_note
    }

    /// The tokenizer (also reachable through [`TextModel::codec`]).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }
}

impl TextCodec for TextTokenizer {
    fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, TokenizerError> {
        TextTokenizer::encode(self, text, parse_special)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        TextTokenizer::decode(self, ids)
    }

    fn piece(&self, id: u32) -> String {
        TextTokenizer::piece(self, id)
    }

    fn stop_ids(&self) -> &[u32] {
        TextTokenizer::stop_ids(self)
    }

    fn vocab_size(&self) -> usize {
        TextTokenizer::vocab_size(self)
    }

    fn chat_prompt(&self, messages: &[ChatMessage]) -> Option<Result<String, TokenizerError>> {
        self.has_chat_template().then(|| self.apply_chat_template(messages, true))
    }
}

impl TextModel for GgufLlama {
    fn name(&self) -> &str {
        &self.name
    }

    fn context_len(&self) -> usize {
        self.context
    }

    fn codec(&self) -> &dyn TextCodec {
        &self.tokenizer
    }

    fn reset(&mut self) {
        match &mut self.engine {
            Engine::Native(runner) => runner.reset(),
            Engine::Candle { weights, .. } => weights.clear_kv_cache(),
        }
    }

    fn engine(&self) -> &str {
        &self.engine_note
    }

    /// Our runner keeps the cache before any position; candle's llama only appends.
    fn rewinds(&self) -> bool {
        matches!(self.engine, Engine::Native(_))
    }

    fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, TextModelError> {
        let (weights, device) = match &mut self.engine {
            Engine::Native(runner) => {
                return runner
                    .forward(tokens, pos)
                    .map_err(|e| TextModelError::Refused { name: self.name.clone(), detail: e.to_string() });
            }
            Engine::Candle { weights, device } => (weights, device),
        };
        let compute = |source| TextModelError::Compute { name: self.name.clone(), source };
        let input = Tensor::new(tokens, device).and_then(|t| t.unsqueeze(0)).map_err(compute)?;
        let logits = weights
            .forward(&input, pos)
            .map_err(|source| TextModelError::Compute { name: self.name.clone(), source })?;
        logits
            .squeeze(0)
            .and_then(|l| l.to_dtype(candle_core::DType::F32))
            .and_then(|l| l.to_vec1())
            .map_err(|source| TextModelError::Compute { name: self.name.clone(), source })
    }
}
