//! Helpers shared by the integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

pub mod llama_cpp;
pub mod servers;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use latent_studio::io::manifest::{Family, ModelManifest, write_manifest};
use latent_studio::vae::network::{Vae, VaeConfig};

/// Writes a randomly initialised tiny VAE as a model folder `root/id`.
pub fn write_tiny_vae(root: &Path, id: &str) -> PathBuf {
    let cfg = VaeConfig::tiny();
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let varmap = VarMap::new();
    Vae::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
    let manifest = ModelManifest {
        id: id.into(),
        family: Family::Vae,
        name: format!("tiny {id}"),
        latent_dim: cfg.latent_dim,
        image_size: [cfg.image_size, cfg.image_size],
        channels: cfg.channels,
        license: "test".into(),
        dataset: "none".into(),
        weights: "model.safetensors".into(),
        classes: vec![],
        latent_map: None,
        config: serde_json::to_value(&cfg).unwrap(),
        dir: dir.clone(),
    };
    write_manifest(&manifest).unwrap();
    dir
}

/// The repository's shipped models folder.
pub fn shipped_models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// eframe's settings storage in memory: what `App::save` writes, a restart reads.
#[derive(Default)]
#[allow(dead_code)] // not every test binary restarts the app
pub struct MemoryStorage(std::collections::HashMap<String, String>);

impl eframe::Storage for MemoryStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

/// A models folder of its own for a test that trains (the studio's runs
/// land in the models folder), holding links to these shipped models.
#[allow(dead_code)] // not every test binary trains
pub fn models_folder_with(ids: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for id in ids {
        std::os::unix::fs::symlink(shipped_models().join(id), dir.path().join(id)).unwrap();
    }
    dir
}

/// Writes a randomly initialised tiny llama model as a GGUF file: 2 blocks,
/// width 16, a byte-level vocabulary (256 byte tokens, the merge "a b" and
/// `<|endoftext|>`), `context` positions, architecture `arch`.
pub fn write_tiny_llama_gguf(path: &Path, context: u32, arch: &str) {
    write_llama_gguf(path, &TinyLlama { context, arch: arch.into(), ..TinyLlama::default() });
}

/// The shape and storage of a random llama model for tests.
pub struct TinyLlama {
    pub context: u32,
    pub arch: String,
    pub dim: usize,
    pub ffn: usize,
    pub heads: u32,
    pub kv_heads: u32,
    pub blocks: u32,
    /// Storage type of the matrices (norms stay F32).
    pub dtype: candle_core::quantized::GgmlDType,
    /// No output.weight: the head is the embedding table.
    pub tied: bool,
    /// A Jinja chat template stored as `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

impl Default for TinyLlama {
    fn default() -> Self {
        Self {
            context: 256,
            arch: "llama".into(),
            dim: 16,
            ffn: 32,
            heads: 2,
            kv_heads: 1,
            blocks: 2,
            dtype: candle_core::quantized::GgmlDType::F32,
            tied: false,
            chat_template: None,
        }
    }
}

/// Writes a random llama model shaped by `spec` as GGUF.
#[allow(dead_code)]
pub fn write_llama_gguf(path: &Path, spec: &TinyLlama) {
    use candle_core::quantized::gguf_file::Value;
    use candle_core::quantized::{GgmlDType, QTensor};
    let (dim, ffn, heads, kv_heads, blocks) = (spec.dim, spec.ffn, spec.heads, spec.kv_heads, spec.blocks);
    let (context, arch) = (spec.context, spec.arch.as_str());
    let head_dim = dim / heads as usize;
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    let mut tokens: Vec<Value> = alphabet.iter().map(|c| Value::String(c.to_string())).collect();
    tokens.push(Value::String("ab".into()));
    tokens.push(Value::String("<|endoftext|>".into()));
    let vocab = tokens.len();
    let mut types = vec![Value::I32(1); vocab];
    types[vocab - 1] = Value::I32(3);
    let s = |v: &str| Value::String(v.into());
    let key = |k: &str| format!("{arch}.{k}");
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s(arch)),
        ("general.name".into(), s("tiny llama")),
        (key("block_count"), Value::U32(blocks)),
        (key("context_length"), Value::U32(context)),
        (key("embedding_length"), Value::U32(dim as u32)),
        (key("feed_forward_length"), Value::U32(ffn as u32)),
        (key("attention.head_count"), Value::U32(heads)),
        (key("attention.head_count_kv"), Value::U32(kv_heads)),
        (key("rope.dimension_count"), Value::U32(head_dim as u32)),
        (key("rope.freq_base"), Value::F32(if arch == "qwen2" { 1e6 } else { 1e4 })),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("default")),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(vec![s("a b")])),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(vocab as u32 - 1)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    let mut metadata = metadata;
    if let Some(template) = &spec.chat_template {
        metadata.push(("tokenizer.chat_template".into(), s(template)));
    }
    let mut rng = latent_studio::train::rng::SeededRng::new(5);
    let mut rng_bias = latent_studio::train::rng::SeededRng::new(6);
    let mut tensor = |shape: &[usize], scale: f32| {
        let n = shape.iter().product();
        let data: Vec<f32> = rng.normal_vec(n).into_iter().map(|v| v * scale).collect();
        let t = candle_core::Tensor::from_vec(data, shape, &Device::Cpu).unwrap();
        QTensor::quantize(&t, spec.dtype).unwrap()
    };
    let ones = |n: usize| {
        QTensor::quantize(&candle_core::Tensor::ones(n, DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32).unwrap()
    };
    let kv = kv_heads as usize * head_dim;
    let mut named: Vec<(String, QTensor)> =
        vec![("token_embd.weight".into(), tensor(&[vocab, dim], 1.0)), ("output_norm.weight".into(), ones(dim))];
    if !spec.tied {
        named.push(("output.weight".into(), tensor(&[vocab, dim], 0.5)));
    }
    for b in 0..blocks {
        for (name, shape) in [
            ("attn_q", [dim, dim]),
            ("attn_k", [kv, dim]),
            ("attn_v", [kv, dim]),
            ("attn_output", [dim, dim]),
            ("ffn_gate", [ffn, dim]),
            ("ffn_up", [ffn, dim]),
            ("ffn_down", [dim, ffn]),
        ] {
            named.push((format!("blk.{b}.{name}.weight"), tensor(&shape, 0.3)));
        }
        if arch == "qwen2" {
            // Biases stay f32 in real files too.
            for (name, len) in [("attn_q", dim), ("attn_k", kv), ("attn_v", kv)] {
                let values = candle_core::Tensor::from_vec(rng_bias.normal_vec(len), len, &Device::Cpu).unwrap();
                named.push((format!("blk.{b}.{name}.bias"), QTensor::quantize(&values, GgmlDType::F32).unwrap()));
            }
        }
        named.push((format!("blk.{b}.attn_norm.weight"), ones(dim)));
        named.push((format!("blk.{b}.ffn_norm.weight"), ones(dim)));
    }
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    candle_core::quantized::gguf_file::write(&mut file, &md, &ts).unwrap();
}

/// Steps a kittest harness until `done` holds (then once more), failing after 30 s.
pub fn step_until<S>(h: &mut egui_kittest::Harness<'_, S>, what: &str, done: impl Fn(&S) -> bool) {
    step_until_within(h, what, 30, done);
}

/// As [`step_until`], failing after `seconds`.
pub fn step_until_within<S>(h: &mut egui_kittest::Harness<'_, S>, what: &str, seconds: u64, done: impl Fn(&S) -> bool) {
    let start = std::time::Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < std::time::Duration::from_secs(seconds), "timed out waiting for {what}");
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    h.step();
}

/// Trains a tiny GAN for one epoch on random images, exports it as the model
/// folder `dir/tiny-gan` and loads it.
#[allow(dead_code)]
pub fn write_tiny_gan(dir: &Path) -> latent_studio::gan::model::GanModel {
    use latent_studio::gan::network::GanConfig;
    use latent_studio::gan::train::{GanTrainer, TrainGanSpec};
    use latent_studio::io::datasets::{DatasetName, ImageSet};
    let cfg = GanConfig::tiny();
    let mut set = ImageSet { side: cfg.image_size, channels: 3, ..Default::default() };
    let mut rng = latent_studio::train::rng::SeededRng::new(1);
    for _ in 0..16 {
        set.pixels.extend(rng.normal_vec(3 * 64).into_iter().map(|v| (0.5 + 0.2 * v).clamp(0.0, 1.0)));
        set.labels.push(0);
    }
    let spec = TrainGanSpec { batch_size: 8, ..TrainGanSpec::dcgan(DatasetName::Emoji, cfg, 1, 2) };
    let mut trainer = GanTrainer::new(spec, &Device::Cpu).unwrap();
    let cancel = latent_studio::train::cancel::CancelToken::new();
    trainer.train_epoch(&set, &mut |_| {}, &cancel).unwrap();
    let out = dir.join("tiny-gan");
    let info = latent_studio::train::export::ExportInfo { id: "tiny-gan", name: "tiny GAN", command: "test" };
    latent_studio::gan::export::export_gan(&trainer, &set, &set, &out, &info).unwrap();
    let manifest = latent_studio::library::find_manifest(dir, "tiny-gan").unwrap();
    latent_studio::gan::model::GanModel::load(manifest, &Device::Cpu).unwrap()
}

/// Runs the binary with the shipped models folder.
pub fn studio(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(args)
        .env("LATENT_STUDIO_MODELS", shipped_models())
        .output()
        .expect("the binary runs")
}

/// Runs the binary, asserts success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = studio(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the binary, asserts failure, returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = studio(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// 80 coloured 64×64 emoji-like PNGs (72 for training: one batch of 64) and their list, in `dir/emoji`.
pub fn write_emoji_folder(dir: &std::path::Path) {
    let emoji = dir.join("emoji");
    std::fs::create_dir_all(emoji.join("64")).unwrap();
    let mut list = Vec::new();
    for i in 0..80u32 {
        let name = format!("{i}.png");
        let img = image::RgbaImage::from_fn(64, 64, |x, y| {
            let inside = (x as i32 - 32).pow(2) + (y as i32 - 32).pow(2) < (10 + i as i32 % 20).pow(2);
            if inside { [(i * 3) as u8, 200, 255 - (i * 3) as u8, 255].into() } else { [0, 0, 0, 0].into() }
        });
        img.save(emoji.join("64").join(&name)).unwrap();
        list.push(serde_json::json!({ "image": name, "category": "Objects", "has_img_google": true }));
    }
    std::fs::write(emoji.join("emoji.json"), serde_json::to_string(&list).unwrap()).unwrap();
}
pub mod hub_standin;
pub mod image_folder;
