//! Our llama forward pass (`models::llama` on `latent-kernels`) against
//! candle-transformers' quantized llama on the same random GGUF files, for
//! every weight type our kernels read (K-quant files' types included, and
//! our dequantization against candle's bit for bit); plus its invariants (thread count,
//! prompt chunking) and refusals. SmolLM2 against llama.cpp: text_smollm2.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;

use candle_core::Device;
use candle_core::quantized::{GgmlDType, gguf_file};
use common::{TinyLlama, write_llama_gguf};
use latent_studio::text::gguf_llama::{EngineChoice, GgufLlama, LoadOptions};
use latent_studio::text::llama::{KvPrecision, LlamaRunner, LlamaWeights};
use latent_studio::text::model::{TextModel, TextModelError};

/// Widths that are whole 32-element blocks, so every matrix can be quantized.
fn blocky(dtype: GgmlDType, tied: bool) -> TinyLlama {
    TinyLlama { dim: 64, ffn: 96, heads: 4, kv_heads: 2, blocks: 2, dtype, tied, ..TinyLlama::default() }
}

/// Logits after a 7-token prompt and after each of 4 more tokens.
fn logits_along(model: &mut dyn TextModel) -> Vec<Vec<f32>> {
    let prompt = [5u32, 70, 71, 200, 3, 3, 99];
    model.reset();
    let mut all = vec![model.forward(&prompt, 0).unwrap()];
    for (i, id) in [7u32, 150, 8, 255].into_iter().enumerate() {
        all.push(model.forward(&[id], prompt.len() + i).unwrap());
    }
    all
}

fn compare_with_candle(path: &Path, relative: f32) {
    let device = Device::Cpu;
    let mut native = GgufLlama::load(path, &device).unwrap();
    assert!(native.engine_note().starts_with("native"), "{}", native.engine_note());
    let mut candle =
        GgufLlama::load_with(path, &device, LoadOptions { engine: EngineChoice::Candle, ..Default::default() })
            .unwrap();
    for (step, (ours, theirs)) in logits_along(&mut native).iter().zip(logits_along(&mut candle)).enumerate() {
        let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= relative * scale, "step {step}: logits differ by {worst} (largest logit {scale})");
    }
}

#[test]
fn matches_candle_on_float_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.gguf");
    write_llama_gguf(&path, &TinyLlama::default());
    // Same arithmetic in a different order: f32 rounding only.
    compare_with_candle(&path, 1e-5);
}

#[test]
fn matches_candle_on_every_quantized_weight_type() {
    // The weights are read bit for bit as candle reads them (see below), but
    // the 8-bit activations are rounded as llama.cpp's x86 code rounds them:
    // scaled by 127/max (candle: by 1/(max/127), which differs in the last bit
    // now and then) and, for Q8_1, with the block sum taken as f16 of d·Σq.
    // A quant one step apart in one layer moves these random models' logits
    // by a few percent; with candle's rounding swapped in they agree to 1e-6.
    // Against llama.cpp itself: text_smollm2.rs.
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.gguf");
        write_llama_gguf(&path, &blocky(dtype, true));
        compare_with_candle(&path, 0.1);
    }
}

#[test]
fn matches_candle_on_the_types_of_k_quant_files() {
    // Q4_K_M and Q5_K_M files mix these; K-quants need rows of 256 and read
    // Q8_K activations (Q5_0 and Q5_1: see above). In the Q5_K model one
    // Q8_K activation at step 4 lies exactly halfway between two quants: we
    // round it to even as ggml does, candle away from zero, and the logits
    // move by 1.4 % (the Q5_K products themselves are candle's bit for bit).
    for (dtype, relative) in [
        (GgmlDType::Q5_0, 0.1),
        (GgmlDType::Q5_1, 0.1),
        (GgmlDType::Q4K, 1e-5),
        (GgmlDType::Q5K, 0.02),
        (GgmlDType::Q6K, 1e-5),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.gguf");
        let wide = dtype.block_size() == 256;
        let spec = if wide { TinyLlama { dim: 256, ffn: 512, ..blocky(dtype, false) } } else { blocky(dtype, false) };
        write_llama_gguf(&path, &spec);
        compare_with_candle(&path, relative);
    }
}

#[test]
fn qwen2_matches_candle() {
    // Biases on q, k and v, RoPE over halves, θ = 10⁶; float and quantized
    // weights. With Q4_K one Q8_K activation at step 3 lies exactly halfway
    // between two quants: we round it to even as ggml does, candle away from
    // zero, and that one step moves the logits by 1e-3 (with candle's
    // rounding swapped in, every step agrees to 3e-7).
    for (dtype, relative) in [(GgmlDType::F32, 1e-5), (GgmlDType::Q8_0, 1e-6), (GgmlDType::Q4K, 2e-3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qwen2.gguf");
        let spec = match dtype {
            GgmlDType::F32 => TinyLlama { arch: "qwen2".into(), ..TinyLlama::default() },
            GgmlDType::Q4K => TinyLlama { arch: "qwen2".into(), dim: 256, ffn: 512, ..blocky(dtype, true) },
            _ => TinyLlama { arch: "qwen2".into(), ..blocky(dtype, true) },
        };
        write_llama_gguf(&path, &spec);
        compare_with_candle(&path, relative);
    }
}

#[test]
fn our_dequantization_is_candles_bit_for_bit() {
    use candle_core::quantized::ggml_file::qtensor_from_ggml;
    use latent_studio::text::llama::weights::weight_format;
    let types = [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1, GgmlDType::Q8_0];
    let k_types = [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K];
    let mut rng = latent_studio::train::rng::SeededRng::new(3);
    for dtype in types.into_iter().chain(k_types) {
        let format = weight_format(dtype).unwrap();
        let (rows, cols) = (4, 2 * 256);
        let row_bytes = format.row_bytes(cols).unwrap();
        let mut bytes: Vec<u8> = (0..rows * row_bytes).map(|_| (rng.next_u64() >> 56) as u8).collect();
        // Every quant bit pattern, but finite scales: f16 in [2⁻¹⁰, 2⁻⁵) at each scale field.
        let fields: &[usize] = match dtype {
            GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q8_0 => &[0],
            GgmlDType::Q6K => &[208],
            _ => &[0, 2],
        };
        for block in bytes.chunks_exact_mut(format.block_bytes()) {
            for &at in fields {
                block[at + 1] = 0x14 + (block[at + 1] & 3);
            }
        }
        let theirs = qtensor_from_ggml(dtype, &bytes, vec![rows, cols], &Device::Cpu)
            .unwrap()
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut ours = vec![0f32; theirs.len()];
        latent_kernels::blocks::dequantize_row(format, &bytes, &mut ours);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{dtype:?} element {i}: {a} vs {b}");
        }
    }
}

fn runner(path: &Path, threads: usize, kv: KvPrecision) -> LlamaRunner {
    let mut file = std::fs::File::open(path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    LlamaRunner::new(LlamaWeights::load(&content, &mut file).unwrap(), threads, kv)
}

#[test]
fn thread_count_and_prompt_chunking_do_not_change_a_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q4_1.gguf");
    write_llama_gguf(&path, &blocky(GgmlDType::Q4_1, false));
    let tokens = [1u32, 2, 3, 100, 101, 102, 250, 7, 7];
    for kv in [KvPrecision::F32, KvPrecision::F16] {
        let mut one = runner(&path, 1, kv);
        let whole = one.forward(&tokens, 0).unwrap();
        for threads in [2, 3, 5] {
            let mut many = runner(&path, threads, kv);
            assert_eq!(many.forward(&tokens, 0).unwrap(), whole, "{threads} threads, {kv:?}");
            // The same tokens fed in three pieces through the KV cache.
            many.reset();
            many.forward(&tokens[..4], 0).unwrap();
            many.forward(&tokens[4..5], 4).unwrap();
            assert_eq!(many.forward(&tokens[5..], 5).unwrap(), whole, "{threads} threads, {kv:?}, chunked");
            // Rewinding to an earlier position recomputes from there.
            assert_eq!(many.forward(&tokens[3..], 3).unwrap(), whole, "{threads} threads, {kv:?}, rewound");
        }
    }
}

#[test]
fn an_f16_cache_rounds_keys_and_values_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q8_0.gguf");
    write_llama_gguf(&path, &blocky(GgmlDType::Q8_0, false));
    // Long enough for attention to merge several chunks of cached positions.
    let tokens: Vec<u32> = (0..150).map(|i| (i * 37 % 250) as u32).collect();
    let (mut exact, mut half) = (runner(&path, 2, KvPrecision::F32), runner(&path, 2, KvPrecision::F16));
    assert_eq!(half.kv_precision(), KvPrecision::F16);
    // The prompt's last token attends to cached keys and values rounded to
    // 11 significant bits. On this random model that moves the logits by
    // 2.1 % of their scale (measured; its activations are nothing like a
    // trained model's); a wrong row or offset would move them by their
    // whole scale. SmolLM2 with an f16 cache
    // is checked against llama.cpp's f16 cache in text_smollm2.rs.
    let (a, b) = (exact.forward(&tokens, 0).unwrap(), half.forward(&tokens, 0).unwrap());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst > 0.0, "the f16 cache changed nothing: it is not in use");
    assert!(worst < 0.05 * scale, "f16 cache moved the logits by {worst} (largest {scale})");
    // Through the API, the engine note says which cache runs.
    let options = LoadOptions { kv_cache: KvPrecision::F16, ..Default::default() };
    let model = GgufLlama::load_with(&path, &Device::Cpu, options).unwrap();
    assert!(model.engine_note().contains("f16 KV cache"), "{}", model.engine_note());
}

#[test]
fn bad_tokens_and_gaps_are_refused_and_the_model_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_llama_gguf(&path, &TinyLlama::default());
    let mut model = GgufLlama::load(&path, &Device::Cpu).unwrap();
    let err = model.forward(&[1, 100_000], 0).unwrap_err();
    assert!(matches!(err, TextModelError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("100000"), "{err}");
    model.forward(&[1, 2], 0).unwrap();
    let err = model.forward(&[3], 5).unwrap_err();
    assert!(err.to_string().contains("position 5"), "{err}");
    assert_eq!(model.forward(&[3], 2).unwrap().len(), 258);
}

#[test]
fn files_with_types_we_have_no_kernel_for_run_on_candle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q3k.gguf");
    write_llama_gguf(
        &path,
        &TinyLlama { dim: 256, ffn: 256, heads: 4, kv_heads: 2, dtype: GgmlDType::Q3K, ..TinyLlama::default() },
    );
    let mut model = GgufLlama::load(&path, &Device::Cpu).unwrap();
    assert!(model.engine_note().contains("no native kernel for"), "{}", model.engine_note());
    assert!(model.engine_note().contains("Q3K"), "{}", model.engine_note());
    assert_eq!(model.forward(&[1, 2, 3], 0).unwrap().len(), 258);
}
