//! The llama architecture's hyper-parameters and weights, read from a GGUF
//! file into our own quantized matrices; Qwen2 is the same network with
//! biases on the query, key and value projections and RoPE over halves.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

use latent_kernels::{QMatrix, WeightFormat};

/// A GGUF file whose metadata or tensors our engine cannot use; the message
/// names the key or tensor.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct GgufError(pub String);

impl From<&str> for GgufError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<String> for GgufError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// The GGUF architectures our forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    /// Biases on q, k and v; RoPE rotates dimension i with i + head_dim/2.
    Qwen2,
}

impl Architecture {
    /// The architecture a file's `general.architecture` names, if we run it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            _ => None,
        }
    }

    /// The prefix of its metadata keys (`llama.block_count`, `qwen2.block_count`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }

    /// Whether RoPE pairs dimension i with i + head_dim/2 (llama.cpp's NEOX
    /// mode) rather than with i + 1 (its NORM mode, llama's GGUF layout).
    pub fn rope_over_halves(self) -> bool {
        self == Self::Qwen2
    }
}

/// Hyper-parameters from a file's `llama.*` (or `qwen2.*`) metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub arch: Architecture,
    /// Width of the residual stream.
    pub embedding: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Hidden width of the SwiGLU MLP.
    pub feed_forward: usize,
    /// Vocabulary size (rows of the embedding table).
    pub vocab: usize,
    /// RMSNorm's ε.
    pub rms_eps: f32,
    /// RoPE's frequency base θ.
    pub rope_base: f32,
}

impl LlamaConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.embedding / self.heads
    }

    /// Width of all key (or value) heads together.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim()
    }

    /// Reads the metadata; the error names the missing or odd key.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, GgufError> {
        let name = content.metadata.get("general.architecture").and_then(|v| v.to_string().ok());
        let name = name.map_or("unknown", String::as_str);
        let arch = Architecture::from_name(name)
            .ok_or_else(|| GgufError(format!("architecture \"{name}\" is not one our engine runs (llama, qwen2)")))?;
        let get = |key: &str| {
            let key = format!("{}.{key}", arch.name());
            content
                .metadata
                .get(&key)
                .and_then(|v| v.to_u32().ok().or_else(|| v.to_u64().ok().map(|x| x as u32)))
                .map(|v| v as usize)
                .ok_or_else(|| GgufError(format!("metadata key {key} is missing")))
        };
        let float = |key: &str, default: f32| {
            let key = format!("{}.{key}", arch.name());
            content.metadata.get(&key).and_then(|v| v.to_f32().ok()).unwrap_or(default)
        };
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.shape.dims2().ok())
            .map(|(rows, _)| rows)
            .ok_or("tensor token_embd.weight is missing or not 2-D")?;
        let config = Self {
            arch,
            embedding: get("embedding_length")?,
            layers: get("block_count")?,
            heads: get("attention.head_count")?,
            kv_heads: get("attention.head_count_kv")?,
            feed_forward: get("feed_forward_length")?,
            vocab,
            rms_eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            rope_base: float("rope.freq_base", 10_000.0),
        };
        if config.heads == 0 || config.kv_heads == 0 || !config.heads.is_multiple_of(config.kv_heads) {
            return Err(GgufError(format!(
                "{} query heads cannot share {} key/value heads",
                config.heads, config.kv_heads
            )));
        }
        if !config.embedding.is_multiple_of(config.heads) || !config.head_dim().is_multiple_of(2) {
            return Err(GgufError(format!(
                "width {} does not split into {} even heads",
                config.embedding, config.heads
            )));
        }
        if let Ok(rope) = get("rope.dimension_count")
            && rope != config.head_dim()
        {
            return Err(GgufError(format!(
                "RoPE over {rope} of {} head dimensions is not supported",
                config.head_dim()
            )));
        }
        if get("expert_count").is_ok_and(|n| n > 1) {
            return Err("mixture-of-experts models are not supported".into());
        }
        Ok(config)
    }
}

/// One transformer block.
pub struct LlamaBlock {
    pub attn_norm: Vec<f32>,
    pub wq: QMatrix,
    pub wk: QMatrix,
    pub wv: QMatrix,
    pub wo: QMatrix,
    /// Biases of the q, k and v projections (Qwen2).
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    pub ffn_norm: Vec<f32>,
    pub gate: QMatrix,
    pub up: QMatrix,
    pub down: QMatrix,
}

/// Every weight of a llama model.
pub struct LlamaWeights {
    pub config: LlamaConfig,
    pub token_embd: QMatrix,
    pub blocks: Vec<LlamaBlock>,
    pub output_norm: Vec<f32>,
    /// The output head; `None` when it is tied to `token_embd`.
    pub output: Option<QMatrix>,
}

/// Our format for a GGML tensor type, or `None` if we have no kernel for it.
pub fn weight_format(dtype: GgmlDType) -> Option<WeightFormat> {
    match dtype {
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Some(WeightFormat::F32),
        GgmlDType::Q4_0 => Some(WeightFormat::Q4_0),
        GgmlDType::Q4_1 => Some(WeightFormat::Q4_1),
        GgmlDType::Q5_0 => Some(WeightFormat::Q5_0),
        GgmlDType::Q5_1 => Some(WeightFormat::Q5_1),
        GgmlDType::Q8_0 => Some(WeightFormat::Q8_0),
        GgmlDType::Q4K => Some(WeightFormat::Q4K),
        GgmlDType::Q5K => Some(WeightFormat::Q5K),
        GgmlDType::Q6K => Some(WeightFormat::Q6K),
        _ => None,
    }
}

/// Why our kernels cannot run this file, or `None` if they can.
pub fn unsupported_reason(content: &gguf_file::Content) -> Option<String> {
    if let Err(e) = LlamaConfig::from_gguf(content) {
        return Some(e.0);
    }
    let odd: Vec<String> = content
        .tensor_infos
        .iter()
        .filter(|(_, t)| weight_format(t.ggml_dtype).is_none())
        .map(|(name, t)| format!("{name} ({:?})", t.ggml_dtype))
        .take(3)
        .collect();
    (!odd.is_empty()).then(|| format!("no native kernel for {}", odd.join(", ")))
}

impl LlamaWeights {
    /// Loads every tensor. Call [`unsupported_reason`] first: a tensor type
    /// without a kernel is an error here.
    pub fn load<R: Read + Seek>(content: &gguf_file::Content, reader: &mut R) -> Result<Self, GgufError> {
        let config = LlamaConfig::from_gguf(content)?;
        // The shape is checked before anything is read: a hostile file's
        // dimensions must not overflow into an allocation (found by fuzzing).
        let file_len = reader.seek(std::io::SeekFrom::End(0)).map_err(|e| GgufError(e.to_string()))?;
        let mut tensor = |name: &str, dims: &[usize]| -> Result<QTensor, GgufError> {
            if let Some(info) = content.tensor_infos.get(name) {
                if info.shape.dims() != dims {
                    return Err(GgufError(format!("tensor {name}: shape {:?}, expected {dims:?}", info.shape.dims())));
                }
                // Its bytes must be in the file, and its f32 values addressable.
                let (block, size) = (info.ggml_dtype.block_size(), info.ggml_dtype.type_size());
                let elems = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                let bytes = elems.and_then(|n| (n / block).checked_mul(size));
                let fits = elems.and_then(|n| n.checked_mul(4)).is_some_and(|b| b <= isize::MAX as usize);
                if !fits || bytes.is_none_or(|b| b as u64 > file_len) {
                    return Err(GgufError(format!("tensor {name}: shape {dims:?} is larger than the file")));
                }
            }
            content.tensor(reader, name, &Device::Cpu).map_err(|e| GgufError(format!("tensor {name}: {e}")))
        };
        let matrix = |t: QTensor, name: &str, rows: usize, cols: usize| -> Result<QMatrix, GgufError> {
            let named = |e: String| GgufError(format!("tensor {name}: {e}"));
            if t.shape().dims() != [rows, cols] {
                return Err(named(format!("shape {:?}, expected [{rows}, {cols}]", t.shape().dims())));
            }
            let format =
                weight_format(t.dtype()).ok_or_else(|| named(format!("type {:?} has no kernel", t.dtype())))?;
            if format == WeightFormat::F32 {
                let values = floats(&t).map_err(|e| named(e.0))?;
                return QMatrix::from_f32(rows, cols, &values).map_err(named);
            }
            let data = t.data().map_err(|e| named(e.to_string()))?.into_owned();
            QMatrix::new(format, rows, cols, data).map_err(named)
        };
        let vector = |t: QTensor, name: &str, len: usize| -> Result<Vec<f32>, GgufError> {
            let values = floats(&t).map_err(|e| GgufError(format!("tensor {name}: {e}")))?;
            if values.len() != len {
                return Err(GgufError(format!("tensor {name}: {} values, expected {len}", values.len())));
            }
            Ok(values)
        };
        let (d, kv, ff) = (config.embedding, config.kv_dim(), config.feed_forward);
        let token_embd =
            matrix(tensor("token_embd.weight", &[config.vocab, d])?, "token_embd.weight", config.vocab, d)?;
        let output_norm = vector(tensor("output_norm.weight", &[d])?, "output_norm.weight", d)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(matrix(tensor("output.weight", &[config.vocab, d])?, "output.weight", config.vocab, d)?),
            false => None,
        };
        // Grown as blocks load: the layer count is the file's word, not yet checked.
        let mut blocks = Vec::new();
        for b in 0..config.layers {
            let mut m = |suffix: &str, rows: usize, cols: usize| {
                let name = format!("blk.{b}.{suffix}.weight");
                matrix(tensor(&name, &[rows, cols])?, &name, rows, cols)
            };
            let (wq, wk, wv, wo) =
                (m("attn_q", d, d)?, m("attn_k", kv, d)?, m("attn_v", kv, d)?, m("attn_output", d, d)?);
            let (gate, up, down) = (m("ffn_gate", ff, d)?, m("ffn_up", ff, d)?, m("ffn_down", d, ff)?);
            let mut v = |suffix: &str| {
                let name = format!("blk.{b}.{suffix}.weight");
                vector(tensor(&name, &[d])?, &name, d)
            };
            let (attn_norm, ffn_norm) = (v("attn_norm")?, v("ffn_norm")?);
            let mut bias = |suffix: &str, len: usize| {
                let name = format!("blk.{b}.{suffix}.bias");
                vector(tensor(&name, &[len])?, &name, len)
            };
            let qkv_bias = match config.arch {
                Architecture::Qwen2 => Some([bias("attn_q", d)?, bias("attn_k", kv)?, bias("attn_v", kv)?]),
                Architecture::Llama => None,
            };
            blocks.push(LlamaBlock { attn_norm, wq, wk, wv, wo, qkv_bias, ffn_norm, gate, up, down });
        }
        Ok(Self { config, token_embd, blocks, output_norm, output })
    }

    /// The output head.
    pub fn head(&self) -> &QMatrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

/// A tensor's values as f32, whatever its float type.
fn floats(t: &QTensor) -> Result<Vec<f32>, GgufError> {
    t.dequantize(&Device::Cpu)
        .and_then(|t: Tensor| t.flatten_all()?.to_vec1::<f32>())
        .map_err(|e| GgufError(e.to_string()))
}
