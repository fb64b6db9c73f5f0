//! `text`, `tokenize` and `bench text`: language models from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::Device;
use clap::Args;

use super::backend_args::BackendArgs;
use crate::io::conversations;
use crate::library::{find_manifest, load_text_model_with};
use crate::remote::openai::{self, RemoteText};
use crate::remote::pool::Pool;
use crate::spec::backend::BackendKind;
use crate::spec::conversation::Conversation;
use crate::spec::text::TextModelRef;
use crate::text::generate::{GenerateSpec, Generated, generate, prompt_ids};
use crate::text::gguf_llama::{EngineChoice, GgufLlama, LoadOptions};
use crate::text::llama::KvPrecision;
use crate::text::model::TextModel;
use crate::text::sampling::SamplingParams;
use crate::train::cancel::CancelToken;

/// Which language model: an installed one by id, or any llama-family GGUF file.
#[derive(Args, Debug, Clone)]
pub struct ModelChoice {
    /// Model id (see `latent-studio models`).
    #[arg(long, conflicts_with = "gguf")]
    pub model: Option<String>,
    /// A llama-family GGUF file to load instead of an installed model.
    #[arg(long)]
    pub gguf: Option<PathBuf>,
    /// What runs a GGUF model: our kernels where they cover it (auto), or candle-transformers.
    #[arg(long, value_enum, default_value_t = EngineArg::Auto)]
    pub engine: EngineArg,
    /// How our engine's KV cache stores keys and values: f32, or f16 as
    /// llama.cpp does by default (half the memory, faster at long contexts).
    #[arg(long, value_enum, default_value_t = KvCacheArg::F32)]
    pub kv_cache: KvCacheArg,
}

/// `--kv-cache` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCacheArg {
    F32,
    F16,
}

/// `--engine` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    Auto,
    Candle,
}

impl ModelChoice {
    /// The model named by the flags, if any.
    pub fn model_ref(&self) -> Option<TextModelRef> {
        match (&self.model, &self.gguf) {
            (_, Some(path)) => Some(TextModelRef::File(path.clone())),
            (Some(id), None) => Some(TextModelRef::Id(id.clone())),
            (None, None) => None,
        }
    }

    /// These flags with `model` as the model when the flags name none.
    fn or_model(&self, model: Option<&TextModelRef>) -> Self {
        let mut choice = self.clone();
        match model {
            _ if self.model_ref().is_some() => {}
            Some(TextModelRef::Id(id)) => choice.model = Some(id.clone()),
            Some(TextModelRef::File(path)) => choice.gguf = Some(path.clone()),
            Some(TextModelRef::Remote { .. }) | None => {}
        }
        choice
    }

    /// Loads the chosen model on the CPU.
    pub fn load(&self, models_dir: &Path) -> anyhow::Result<Box<dyn TextModel>> {
        let device = Device::Cpu;
        let engine = match self.engine {
            EngineArg::Auto => EngineChoice::Auto,
            EngineArg::Candle => EngineChoice::Candle,
        };
        let kv_cache = match self.kv_cache {
            KvCacheArg::F32 => KvPrecision::F32,
            KvCacheArg::F16 => KvPrecision::F16,
        };
        let options = LoadOptions { engine, kv_cache };
        match (&self.model, &self.gguf) {
            (_, Some(path)) => Ok(Box::new(GgufLlama::load_with(path, &device, options)?)),
            (Some(id), None) => Ok(load_text_model_with(&find_manifest(models_dir, id)?, &device, options)?),
            (None, None) => anyhow::bail!("give --model ID or --gguf FILE"),
        }
    }
}

/// Sampling flags shared by `text`; a flag left out takes its default, or
/// with `--conversation` the value the conversation was last answered with.
#[derive(Args, Debug, Clone, Default)]
pub struct SamplingArgs {
    /// 0 is greedy [default: 0.7].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0: all) [default: 40].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus: keep the most likely tokens up to this probability mass [default: 0.95].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens below this fraction of the most likely one's probability [default: 0.05].
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Penalty for tokens among the last --repeat-window ones (1: off) [default: 1.1].
    #[arg(long)]
    pub repeat_penalty: Option<f32>,
    /// How many recent tokens the penalties look at [default: 64].
    #[arg(long)]
    pub repeat_window: Option<usize>,
    /// Subtract this per occurrence of a recent token from its logit (OpenAI's; 0: off) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub frequency_penalty: Option<f32>,
    /// Subtract this from every recent token's logit (OpenAI's; 0: off) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub presence_penalty: Option<f32>,
    /// Seed: the same seed and settings give the same text [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The flags given, over `base` for the rest.
    fn params_over(&self, base: &SamplingParams) -> anyhow::Result<SamplingParams> {
        let p = SamplingParams {
            temperature: self.temperature.unwrap_or(base.temperature),
            top_k: self.top_k.unwrap_or(base.top_k),
            top_p: self.top_p.unwrap_or(base.top_p),
            min_p: self.min_p.unwrap_or(base.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(base.repeat_penalty),
            repeat_window: self.repeat_window.unwrap_or(base.repeat_window),
            frequency_penalty: self.frequency_penalty.unwrap_or(base.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(base.presence_penalty),
            seed: self.seed.unwrap_or(base.seed),
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
    /// Most new tokens (default 256, or the conversation's).
    pub max_tokens: Option<usize>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// The system prompt of a chat.
    pub system: Option<String>,
    /// A conversation file: its turns are the context, and the prompt and
    /// the answer are appended to it.
    pub conversation: Option<PathBuf>,
    /// One JSON object at the end instead of streamed text.
    pub json: bool,
}

/// Most new tokens when neither the flag nor a conversation says.
const DEFAULT_MAX_TOKENS: usize = 256;

/// `text`: streams the continuation (or chat answer) to stdout, stats to
/// stderr; with `json`, prints the result as one object instead.
pub fn text(
    models_dir: &Path,
    choice: &ModelChoice,
    backend: &BackendArgs,
    run: TextRun,
    sampling: &SamplingArgs,
) -> anyhow::Result<()> {
    if let Some(path) = run.conversation.clone() {
        return continue_conversation(models_dir, choice, backend, run, sampling, &path);
    }
    let mut engine = Engine::open(models_dir, choice, backend, None)?;
    let spec = GenerateSpec {
        prompt: run.prompt,
        chat: run.chat,
        system: run.system.unwrap_or_default(),
        history: Vec::new(),
        max_new_tokens: run.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        sampling: sampling.params_over(&SamplingParams::default())?,
        stop_strings: run.stop,
    };
    let result = stream(&mut engine, &spec, run.json)?;
    if !run.json {
        report(&result);
    }
    Ok(())
}

/// What runs the generation: a model loaded here, or a model on
/// OpenAI-compatible servers (the first healthy one that has it, the next
/// if it fails).
enum Engine {
    Local(Box<dyn TextModel>),
    Remote(Pool, RemoteText),
}

impl Engine {
    /// The model the flags name: on the `--backend` servers if given (its
    /// `--model` is the servers' model id, or the first one listed), else
    /// here; with neither, `earlier` (a conversation's model) decides.
    fn open(
        models_dir: &Path,
        choice: &ModelChoice,
        backend: &BackendArgs,
        earlier: Option<&TextModelRef>,
    ) -> anyhow::Result<Self> {
        let remote = match (backend.pool(BackendKind::OpenAi)?, earlier) {
            (Some(pool), _) => Some((pool, choice.model.clone())),
            (None, Some(TextModelRef::Remote { backend: url, model })) if choice.model_ref().is_none() => {
                let earlier = BackendArgs { backend: vec![url.clone()], backend_kind: None };
                earlier.pool(BackendKind::OpenAi)?.map(|pool| (pool, Some(model.clone())))
            }
            (None, _) => None,
        };
        let Some((pool, model)) = remote else {
            return Ok(Self::Local(choice.or_model(earlier).load(models_dir)?));
        };
        anyhow::ensure!(
            choice.gguf.is_none(),
            "--gguf runs a file here; with --backend, --model names the server's model"
        );
        let model = match model {
            Some(model) => model,
            None => pool
                .views()
                .into_iter()
                .find_map(|s| s.models.into_iter().next())
                .context("no --backend server answered with a model list")?,
        };
        Ok(Self::Remote(pool, RemoteText { model, top_logprobs: 0 }))
    }

    /// The model as a conversation records it (a remote one by the server that answered).
    fn model_ref(
        &self,
        choice: &ModelChoice,
        earlier: Option<&TextModelRef>,
        result: &Generated,
    ) -> Option<TextModelRef> {
        match (self, &result.served) {
            (Self::Remote(_, request), Some(served)) => {
                Some(TextModelRef::Remote { backend: served.backend.clone(), model: request.model.clone() })
            }
            _ => choice.or_model(earlier).model_ref(),
        }
    }

    fn generate(&mut self, spec: &GenerateSpec, on_text: &mut dyn FnMut(&str)) -> anyhow::Result<Generated> {
        match self {
            Self::Local(model) => {
                Ok(generate(model.as_mut(), spec, &CancelToken::new(), &mut |_, piece| on_text(piece))?)
            }
            Self::Remote(pool, request) => {
                let mut on_attempt = |url: &str, attempt: usize| {
                    if attempt > 1 {
                        eprintln!("\n(the previous server failed; generating again on {url})");
                    }
                };
                let (generated, _) = pool.run(Some(&request.model), &mut on_attempt, &mut |server| {
                    openai::generate(server, request, spec, &|| false, &mut |_, piece| on_text(piece))
                })?;
                Ok(generated)
            }
        }
    }
}

/// `text --chat --conversation FILE`: answers the prompt with the file's
/// turns as context and appends both to the file (created if missing). The
/// conversation keeps its model (a remote one included) and settings unless
/// flags change them.
fn continue_conversation(
    models_dir: &Path,
    choice: &ModelChoice,
    backend: &BackendArgs,
    run: TextRun,
    sampling: &SamplingArgs,
    path: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(run.chat, "--conversation continues a chat: add --chat");
    let mut conversation = if path.exists() {
        conversations::load(path)?
    } else {
        Conversation::new(choice.model_ref(), SamplingParams::default(), DEFAULT_MAX_TOKENS)
    };
    let earlier = conversation.model.clone();
    let mut engine = Engine::open(models_dir, choice, backend, earlier.as_ref())?;
    conversation.sampling = sampling.params_over(&conversation.sampling)?;
    conversation.max_new_tokens = run.max_tokens.unwrap_or(conversation.max_new_tokens);
    if let Some(system) = run.system {
        conversation.system = system;
    }
    if !run.stop.is_empty() {
        conversation.stop_strings = run.stop;
    }
    conversation.push_user(&run.prompt);
    let spec = conversation.next_turn().map_err(anyhow::Error::msg)?;
    let result = stream(&mut engine, &spec, run.json)?;
    conversation.model = engine.model_ref(choice, earlier.as_ref(), &result);
    conversation.push_answer(&result.text);
    conversations::save(path, &mut conversation)?;
    if !run.json {
        report(&result);
        if result.dropped_messages > 0 {
            eprintln!(
                "the {} earliest messages were left out: the conversation is longer than the context",
                result.dropped_messages
            );
        }
    }
    Ok(())
}

/// Generates, streaming text to stdout (or, with `json`, printing the result
/// as one object at the end).
fn stream(engine: &mut Engine, spec: &GenerateSpec, json: bool) -> anyhow::Result<Generated> {
    let mut out = std::io::stdout().lock();
    let mut write_error = None;
    let result = engine.generate(spec, &mut |piece| {
        if !json && write_error.is_none() {
            write_error = out.write_all(piece.as_bytes()).and_then(|()| out.flush()).err();
        }
    })?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write to stdout");
    }
    if json {
        writeln!(out, "{}", serde_json::to_string(&result)?)?;
    } else {
        writeln!(out)?;
    }
    Ok(result)
}

/// Prompt and generation statistics on stderr.
fn report(result: &Generated) {
    let prompt_tokens = match &result.served {
        Some(served) => served.prompt_tokens.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        None => result.prompt_ids.len().to_string(),
    };
    if let Some(served) = &result.served {
        eprintln!("served by {} ({})", served.backend, served.model);
    }
    eprintln!(
        "{} prompt tokens in {:.2} s, {} new tokens in {:.2} s ({:.1} tokens/s), stopped: {:?}",
        prompt_tokens,
        result.prompt_seconds,
        result.generated_tokens(),
        result.generate_seconds,
        result.tokens_per_second(),
        result.stop
    );
}

/// `tokenize`: token ids and pieces of a text, as a table or JSON.
pub fn tokenize(models_dir: &Path, choice: &ModelChoice, text: &str, chat: bool, json: bool) -> anyhow::Result<()> {
    let model = choice.load(models_dir)?;
    let spec = GenerateSpec {
        prompt: text.to_owned(),
        chat,
        system: String::new(),
        history: Vec::new(),
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
