//! `text`, `tokenize` and `bench text`: language models from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use clap::Args;

use crate::library::{find_manifest, load_text_model_with};
use crate::text::generate::{GenerateSpec, generate, prompt_ids};
use crate::text::gguf_llama::{EngineChoice, GgufLlama};
use crate::text::model::TextModel;
use crate::text::sampling::SamplingParams;
use crate::train::cancel::CancelToken;

/// Which language model: an installed one by id, or any llama-family GGUF file.
#[derive(Args, Debug, Clone)]
pub struct ModelChoice {
    /// Model id (see `latent-studio models`).
    #[arg(long, required_unless_present = "gguf", conflicts_with = "gguf")]
    pub model: Option<String>,
    /// A llama-family GGUF file to load instead of an installed model.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// What runs a GGUF model: our kernels where they cover it (auto), or candle-transformers.
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,
}

/// `--engine` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    Auto,
    Candle,
}

impl ModelChoice {
    /// Loads the chosen model on the CPU.
    pub fn load(&self, models_dir: &Path) -> anyhow::Result<Box<dyn TextModel>> {
        let device = Device::Cpu;
        let engine = match self.engine {
            EngineArg::Auto => EngineChoice::Auto,
            EngineArg::Candle => EngineChoice::Candle,
        };
        match (&self.model, &self.gguf) {
            (_, Some(path)) => Ok(Box::new(GgufLlama::load_with(path, &device, engine)?)),
            (Some(id), None) => Ok(load_text_model_with(&find_manifest(models_dir, id)?, &device, engine)?),
            (None, None) => anyhow::bail!("give --model ID or --gguf FILE"),
        }
    }
}

/// Sampling flags shared by `text`.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below this fraction of the most likely one's probability.
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalty for tokens among the last --repeat-window ones (1: off).
    #[arg(long, default_value_t = 1.1)]
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    #[arg(long, default_value_t = 64)]
    pub repeat_window: usize,
    /// Seed: the same seed and settings give the same text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    fn params(&self) -> anyhow::Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_window: self.repeat_window,
            seed: self.seed,
        };
        p.validate().map_err(anyhow::Error::msg)?;
        Ok(p)
    }
}

/// What `text` generates and how it reports.
pub struct TextRun {
    /// Raw text to continue, or with `chat` the user's message.
    pub prompt: String,
    /// Use the model's chat template.
    pub chat: bool,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// One JSON object at the end instead of streamed text.
    pub json: bool,
}

/// `text`: streams the continuation (or chat answer) to stdout, stats to
/// stderr; with `json`, prints the result as one object instead.
pub fn text(models_dir: &Path, choice: &ModelChoice, run: TextRun, sampling: &SamplingArgs) -> anyhow::Result<()> {
    let mut model = choice.load(models_dir)?;
    let spec = GenerateSpec {
        prompt: run.prompt,
        chat: run.chat,
        max_new_tokens: run.max_tokens,
        sampling: sampling.params()?,
        stop_strings: run.stop,
    };
    let mut out = std::io::stdout().lock();
    let mut write_error = None;
    let result = generate(model.as_mut(), &spec, &CancelToken::new(), &mut |_, piece| {
        if !run.json && write_error.is_none() {
            write_error = out.write_all(piece.as_bytes()).and_then(|()| out.flush()).err();
        }
    })?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write to stdout");
    }
    if run.json {
        writeln!(out, "{}", serde_json::to_string(&result)?)?;
        return Ok(());
    }
    writeln!(out)?;
    eprintln!(
        "{} prompt tokens in {:.2} s, {} new tokens in {:.2} s ({:.1} tokens/s), stopped: {:?}",
        result.prompt_ids.len(),
        result.prompt_seconds,
        result.ids.len(),
        result.generate_seconds,
        result.tokens_per_second(),
        result.stop
    );
    Ok(())
}

/// `tokenize`: token ids and pieces of a text, as a table or JSON.
pub fn tokenize(models_dir: &Path, choice: &ModelChoice, text: &str, chat: bool, json: bool) -> anyhow::Result<()> {
    let model = choice.load(models_dir)?;
    let spec = GenerateSpec {
        prompt: text.to_owned(),
        chat,
        max_new_tokens: 0,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
    };
    let ids = prompt_ids(model.as_ref(), &spec)?;
    let pieces: Vec<String> = ids.iter().map(|&id| model.codec().piece(id)).collect();
    if json {
        println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
        return Ok(());
    }
    println!("{} tokens", ids.len());
    for (id, piece) in ids.iter().zip(&pieces) {
        println!("{id:>7}  {piece:?}");
    }
    Ok(())
}
