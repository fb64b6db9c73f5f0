//! What a text generation asks for and what it reports.

use serde::{Deserialize, Serialize};

/// The knobs of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Divides the logits; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one (0: none).
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recently seen tokens (1: off).
    pub repeat_penalty: f32,
    /// How many of the latest tokens count as recent.
    pub repeat_window: usize,
    /// Subtracted from a recent token's logit once per time it occurred (0: off).
    #[serde(default)]
    pub frequency_penalty: f32,
    /// Subtracted from the logit of every token that occurred recently (0: off).
    #[serde(default)]
    pub presence_penalty: f32,
    /// Seed of the draw.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_window: 64,
            ..Self::greedy()
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalty: the reference behaviour for comparisons.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_window: 0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }

    /// A message naming the first value out of range.
    pub fn validate(&self) -> Result<(), crate::spec::InvalidSetting> {
        let checks = [
            (self.temperature >= 0.0 && self.temperature.is_finite(), "temperature must be ≥ 0"),
            (self.top_p > 0.0 && self.top_p <= 1.0, "top-p must be in (0, 1]"),
            ((0.0..1.0).contains(&self.min_p), "min-p must be in [0, 1)"),
            (self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite(), "repetition penalty must be > 0"),
            ((-2.0..=2.0).contains(&self.frequency_penalty), "frequency penalty must be in [-2, 2]"),
            ((-2.0..=2.0).contains(&self.presence_penalty), "presence penalty must be in [-2, 2]"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err(crate::spec::InvalidSetting((*msg).to_owned())),
            None => Ok(()),
        }
    }
}

/// One message of a chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// "system", "user" or "assistant".
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.to_owned(), content: content.into() }
    }
}

/// A language model to run: an installed one, or a GGUF file the user opened.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextModelRef {
    /// Installed model id (a manifest of the text family).
    Id(String),
    /// A llama-family GGUF file anywhere on disk.
    File(std::path::PathBuf),
    /// A model on an OpenAI-compatible server: its base URL and the server's model id.
    Remote { backend: String, model: String },
}

impl std::fmt::Display for TextModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Id(id) => f.write_str(id),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Remote { backend, model } => write!(f, "{model} @ {backend}"),
        }
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateSpec {
    /// The user's text (with `chat`, the newest user message).
    pub prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    pub chat: bool,
    /// With `chat`: the system prompt (empty: the template's own default, if any).
    #[serde(default)]
    pub system: String,
    /// With `chat`: the earlier turns, oldest first, before `prompt`.
    #[serde(default)]
    pub history: Vec<ChatMessage>,
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// Sampling parameters, seed included.
    pub sampling: SamplingParams,
    /// Generation ends when the output contains one of these (it is cut before it).
    pub stop_strings: Vec<String>,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model produced an end-of-turn token.
    StopToken,
    /// The output reached a stop string.
    StopString,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The user cancelled.
    Cancelled,
}

/// The result of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    /// Prompt token ids as fed to the model (template applied).
    pub prompt_ids: Vec<u32>,
    /// Generated token ids (a final stop token excluded).
    pub ids: Vec<u32>,
    /// The generated text (cut at a stop string).
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Seconds spent on the prompt (one forward pass).
    pub prompt_seconds: f64,
    /// Seconds spent generating after the prompt.
    pub generate_seconds: f64,
    /// Leading prompt tokens whose keys and values were already cached from
    /// the previous generation (not computed again).
    #[serde(default)]
    pub reused_tokens: usize,
    /// Earliest messages of `history` left out so the prompt fits the context.
    #[serde(default)]
    pub dropped_messages: usize,
    /// Generated on a remote server rather than here: which, and what it
    /// told of the tokens (`prompt_ids` and `ids` are then empty unless it
    /// returned ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
}

/// What a remote text server told about one generation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The server's base URL.
    pub backend: String,
    /// The model id the server ran.
    pub model: String,
    /// Its count of prompt tokens, if it gave one.
    pub prompt_tokens: Option<usize>,
    /// Its count of generated tokens (or the tokens streamed, if it gave no count).
    pub completion_tokens: usize,
    /// The generated tokens with their log-probabilities, where the server returned them.
    pub tokens: Vec<RemoteToken>,
}

/// One generated token as a remote server reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteToken {
    /// Its text.
    pub text: String,
    /// Its id, where the server gave it (vLLM's `token_id:N` form).
    pub id: Option<u32>,
    /// Natural log of its probability.
    pub logprob: f32,
    /// The most likely alternatives at its position, best first, with their log-probabilities.
    pub top: Vec<(String, f32)>,
}

impl Generated {
    /// Generated tokens per second (after the prompt).
    pub fn tokens_per_second(&self) -> f64 {
        self.generated_tokens() as f64 / self.generate_seconds.max(1e-9)
    }

    /// How many tokens were generated (a remote server's count where the ids are not known).
    pub fn generated_tokens(&self) -> usize {
        match &self.served {
            Some(served) if self.ids.is_empty() => served.completion_tokens,
            _ => self.ids.len(),
        }
    }
}

/// How a language model's KV cache stores keys and values (our engine's;
/// candle's is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvPrecision {
    /// Exact copies of the computed keys and values.
    #[default]
    F32,
    /// Rounded to half precision, llama.cpp's default `--cache-type-k/v f16`:
    /// half the memory, and faster attention at long contexts.
    F16,
}

impl KvPrecision {
    /// The name used on the command line and in engine notes.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}
