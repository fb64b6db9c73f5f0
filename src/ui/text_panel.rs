//! The text panel: pick a language model, write a prompt (or a chat
//! message), set the sampling knobs, and watch the answer stream in token by
//! token; stop at any time; see how prompt and output split into tokens (ids
//! on hover); save the text with the settings that made it.

use egui::{Color32, RichText};

use super::theme;
use crate::io::manifest::ModelManifest;
use crate::spec::text::KvPrecision;
use crate::spec::text::{GenerateSpec, Generated, SamplingParams, StopReason};
use crate::ui::commands::UiCommand;
use crate::ui::conversation_view::{ChatState, ConversationView};
use crate::worker::{JobId, TextModelRef, TokenPiece};

/// What the panel shows besides its own state.
pub struct TextPanelContext<'a> {
    /// Installed language models.
    pub models: &'a [ModelManifest],
    /// Models of the healthy OpenAI-compatible backends, each with the backends that have it.
    pub remote: &'a [(String, Vec<String>)],
}

/// The text panel's state.
pub struct TextPanel {
    /// The model to run.
    pub model: Option<TextModelRef>,
    /// The user's text.
    pub prompt: String,
    /// Wrap the prompt in the model's chat template.
    pub chat: bool,
    /// Sampling knobs and seed.
    pub sampling: SamplingParams,
    /// Most new tokens.
    pub max_tokens: usize,
    /// How our engine keeps the KV cache.
    pub kv_cache: KvPrecision,
    /// Stop strings, one per line.
    pub stop: String,
    /// The answer so far.
    pub output: String,
    /// The prompt as the model saw it.
    pub prompt_tokens: Vec<TokenPiece>,
    /// The tokens generated so far.
    pub output_tokens: Vec<TokenPiece>,
    /// The generation in progress.
    pub running: Option<JobId>,
    /// The last finished generation (what "Save text" writes).
    pub last: Option<Generated>,
    /// Name of the model that produced the output.
    pub model_name: String,
    /// Chat mode's conversations.
    pub chat_view: ConversationView,
    /// The running job answers the open conversation (not a raw prompt).
    pub answering: bool,
    /// When the last streamed token arrived.
    pub last_token_at: Option<std::time::Instant>,
    started: Option<std::time::Instant>,
}

impl Default for TextPanel {
    fn default() -> Self {
        Self {
            model: None,
            prompt: String::new(),
            chat: true,
            sampling: SamplingParams::default(),
            max_tokens: 256,
            kv_cache: KvPrecision::F32,
            stop: String::new(),
            output: String::new(),
            prompt_tokens: Vec::new(),
            output_tokens: Vec::new(),
            running: None,
            last: None,
            model_name: String::new(),
            chat_view: ConversationView::default(),
            answering: false,
            last_token_at: None,
            started: None,
        }
    }
}

impl TextPanel {
    /// Stop strings as a list (blank lines ignored; `\n` written as text means a newline).
    pub fn stop_strings(&self) -> Vec<String> {
        self.stop.lines().filter(|l| !l.is_empty()).map(|l| l.replace("\\n", "\n")).collect()
    }

    /// What "Generate" runs: the prompt and every setting.
    pub fn spec(&self) -> GenerateSpec {
        GenerateSpec {
            prompt: self.prompt.clone(),
            chat: self.chat,
            system: String::new(),
            history: Vec::new(),
            max_new_tokens: self.max_tokens,
            sampling: self.sampling.clone(),
            stop_strings: self.stop_strings(),
        }
    }

    /// A generation was submitted as `job`; `answering` if it answers the open conversation.
    pub fn begin(&mut self, job: JobId, answering: bool) {
        self.running = Some(job);
        self.answering = answering;
        self.chat_view.answer.clear();
        self.output.clear();
        self.prompt_tokens.clear();
        self.output_tokens.clear();
        self.last = None;
        self.started = Some(std::time::Instant::now());
    }

    /// The worker tokenized the prompt.
    /// A job that moved to another backend starts again: what it streamed so far goes.
    pub fn started(&mut self, model_name: String, prompt: Vec<TokenPiece>) {
        self.output.clear();
        self.output_tokens.clear();
        if self.answering {
            self.chat_view.answer.clear();
        }
        self.model_name = model_name;
        self.prompt_tokens = prompt;
        self.started = Some(std::time::Instant::now());
    }

    /// A token arrived.
    pub fn push(&mut self, token: Option<TokenPiece>, text: &str) {
        self.output_tokens.extend(token);
        self.output.push_str(text);
        self.last_token_at = Some(std::time::Instant::now());
        if self.answering {
            self.chat_view.answer.push_str(text);
        }
    }

    /// Generation ended.
    /// Returns whether the answer joined the open conversation (which the app then saves).
    pub fn finish(&mut self, generated: Generated) -> bool {
        self.output = generated.text.clone();
        self.running = None;
        let answered = std::mem::take(&mut self.answering);
        if answered {
            let view = &mut self.chat_view;
            view.conversation.push_answer(&generated.text);
            view.answer.clear();
            view.note = Some(answer_note(&generated));
        }
        self.last = Some(generated);
        answered
    }

    /// The job failed or was dropped.
    pub fn abort(&mut self) {
        self.running = None;
        self.answering = false;
    }

    /// Draws the panel; user actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &TextPanelContext, out: &mut Vec<UiCommand>) {
        self.model_row_ui(ui, ctx, out);
        ui.add_space(6.0);
        if self.chat {
            self.chat_ui(ui, ctx, out);
            return;
        }
        ui.columns(2, |cols| {
            self.prompt_ui(&mut cols[0], ctx, out);
            self.settings_ui(&mut cols[1]);
        });
        ui.separator();
        self.output_ui(ui);
    }

    /// Chat mode: the conversations, with the sampling settings and the token view beside them.
    fn chat_ui(&mut self, ui: &mut egui::Ui, ctx: &TextPanelContext, out: &mut Vec<UiCommand>) {
        let state = ChatState { running: self.running.is_some(), has_model: self.model.is_some() };
        let settings_width = 330.0;
        ui.horizontal_top(|ui| {
            let width = (ui.available_width() - settings_width - 16.0).max(300.0);
            ui.vertical(|ui| {
                ui.set_width(width);
                self.chat_view.ui(ui, &state, out);
            });
            ui.separator();
            ui.vertical(|ui| {
                self.chat_toggle_ui(ui, ctx);
                self.settings_ui(ui);
                ui.separator();
                self.rate_ui(ui);
                egui::ScrollArea::vertical().id_salt("chat-tokens").show(ui, |ui| self.tokens_view_ui(ui));
            });
        });
    }

    /// The Chat checkbox, enabled when the model has a chat template.
    fn chat_toggle_ui(&mut self, ui: &mut egui::Ui, ctx: &TextPanelContext) {
        let has_template = match &self.model {
            Some(TextModelRef::Id(id)) => ctx.models.iter().any(|m| &m.id == id && m.has_chat_template()),
            _ => true,
        };
        ui.add_enabled(has_template, egui::Checkbox::new(&mut self.chat, "Chat"))
            .on_hover_text("Use the model's chat template (instruct models)")
            .on_disabled_hover_text("This model has no chat template: it continues the text");
    }

    fn model_row_ui(&mut self, ui: &mut egui::Ui, ctx: &TextPanelContext, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.heading("Text");
            let shown = match &self.model {
                Some(TextModelRef::Id(id)) => {
                    ctx.models.iter().find(|m| &m.id == id).map_or(id.clone(), |m| m.name.clone())
                }
                Some(TextModelRef::File(path)) => {
                    path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned())
                }
                Some(remote @ TextModelRef::Remote { .. }) => remote.to_string(),
                None => "(no model)".into(),
            };
            egui::ComboBox::from_label("Language model").selected_text(shown).show_ui(ui, |ui| {
                for m in ctx.models {
                    let chosen = TextModelRef::Id(m.id.clone());
                    if ui.selectable_label(self.model.as_ref() == Some(&chosen), &m.name).clicked() {
                        out.push(UiCommand::SelectTextModel(chosen));
                    }
                }
                if !ctx.remote.is_empty() {
                    ui.separator();
                }
                for (model, urls) in ctx.remote {
                    let backend = urls.first().cloned().unwrap_or_default();
                    let chosen = TextModelRef::Remote { backend, model: model.clone() };
                    let same = matches!(&self.model, Some(TextModelRef::Remote { model: m, .. }) if m == model);
                    let label = super::backends_view::remote_label(model, urls);
                    if ui.selectable_label(same, label).on_hover_text(urls.join("\n")).clicked() {
                        out.push(UiCommand::SelectTextModel(chosen));
                    }
                }
            });
            if ui.button("Open model…").on_hover_text("Any llama-family GGUF file").clicked() {
                out.push(UiCommand::OpenTextModel);
            }
        });
    }

    fn prompt_ui(&mut self, ui: &mut egui::Ui, ctx: &TextPanelContext, out: &mut Vec<UiCommand>) {
        let label = ui.label("Prompt");
        ui.add(
            egui::TextEdit::multiline(&mut self.prompt)
                .hint_text(if self.chat { "A message to the assistant" } else { "Text to continue" })
                .desired_rows(5)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.horizontal(|ui| {
            self.chat_toggle_ui(ui, ctx);
            let idle = self.running.is_none();
            let can_run = idle && self.model.is_some() && !self.prompt.trim().is_empty();
            if ui.add_enabled(can_run, egui::Button::new("Generate")).clicked() {
                out.push(UiCommand::Generate);
            }
            if ui.add_enabled(!idle, egui::Button::new("Stop")).clicked()
                && let Some(job) = self.running
            {
                out.push(UiCommand::Cancel(job));
            }
            let can_save = idle && self.last.is_some();
            if ui.add_enabled(can_save, egui::Button::new("Save text")).clicked() {
                out.push(UiCommand::SaveText);
            }
        });
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.sampling;
        egui::Grid::new("sampling").num_columns(2).spacing([12.0, 4.0]).show(ui, |ui| {
            ui.label("Temperature");
            ui.add(egui::Slider::new(&mut s.temperature, 0.0..=2.0).step_by(0.05))
                .on_hover_text("0 always picks the most likely token");
            ui.end_row();
            ui.label("Top-k");
            ui.add(egui::Slider::new(&mut s.top_k, 0..=200)).on_hover_text("0 keeps every token");
            ui.end_row();
            ui.label("Top-p");
            ui.add(egui::Slider::new(&mut s.top_p, 0.05..=1.0).step_by(0.01))
                .on_hover_text("Keep the most likely tokens up to this probability mass");
            ui.end_row();
            ui.label("Min-p");
            ui.add(egui::Slider::new(&mut s.min_p, 0.0..=0.5).step_by(0.01))
                .on_hover_text("Drop tokens below this fraction of the most likely one's probability");
            ui.end_row();
            ui.label("Repetition penalty");
            ui.add(egui::Slider::new(&mut s.repeat_penalty, 1.0..=2.0).step_by(0.01))
                .on_hover_text("1 is off; higher makes recent tokens less likely");
            ui.end_row();
            ui.label("Penalty window");
            ui.add(egui::Slider::new(&mut s.repeat_window, 0..=512))
                .on_hover_text("How many recent tokens the penalty looks at");
            ui.end_row();
            ui.label("Max new tokens");
            ui.add(egui::Slider::new(&mut self.max_tokens, 1..=2048).logarithmic(true))
                .on_hover_text("Most new tokens per answer");
            ui.end_row();
            ui.label("KV cache");
            let mut half = self.kv_cache == KvPrecision::F16;
            ui.checkbox(&mut half, "f16").on_hover_text(
                "Keep the model's cache in half precision, as llama.cpp does: half the memory and faster \
                 long contexts, logits within rounding (the model reloads when this changes)",
            );
            self.kv_cache = if half { KvPrecision::F16 } else { KvPrecision::F32 };
            ui.end_row();
            ui.label("Seed");
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut s.seed)).on_hover_text("Seed of the draw");
                if ui.button("Random").clicked() {
                    s.seed = super::latent_panel::fresh_seed(s.seed);
                }
            });
            ui.end_row();
            ui.label("Stop strings").on_hover_text("One per line; generation ends before them");
            ui.add(egui::TextEdit::multiline(&mut self.stop).desired_rows(2).desired_width(160.0))
                .on_hover_text("Stop strings, one per line");
            ui.end_row();
        });
    }

    fn output_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("Output");
            self.rate_ui(ui);
        });
        let label = ui.label(RichText::new("Generated text").weak());
        ui.add(
            egui::TextEdit::multiline(&mut self.output.as_str())
                .desired_rows(8)
                .desired_width(f32::INFINITY)
                .id_salt("text-output"),
        )
        .labelled_by(label.id);
        self.tokens_view_ui(ui);
    }

    /// Tokens so far and their rate, and why the last generation ended.
    fn rate_ui(&self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let count = match &self.last {
                Some(g) if g.served.is_some() => g.generated_tokens(),
                _ => self.output_tokens.len(),
            };
            let rate = match (&self.last, self.started) {
                (Some(g), _) => Some(g.tokens_per_second()),
                (None, Some(t)) if count > 0 => Some(count as f64 / t.elapsed().as_secs_f64().max(1e-6)),
                _ => None,
            };
            if let Some(rate) = rate {
                ui.label(format!("{count} tokens, {rate:.1} tokens/s"));
            }
            if self.running.is_some() {
                super::busy::busy(ui);
            } else if let Some(g) = &self.last {
                ui.label(RichText::new(stop_text(g.stop)).weak());
            }
        });
    }

    /// Prompt and output as token chips.
    fn tokens_view_ui(&self, ui: &mut egui::Ui) {
        egui::CollapsingHeader::new("Tokens").default_open(true).show(ui, |ui| {
            ui.label(RichText::new("Prompt, then output; hover a token for its id").weak());
            tokens_ui(ui, &self.prompt_tokens, theme::PROMPT_TOKENS);
            tokens_ui(ui, &self.output_tokens, theme::OUTPUT_TOKENS);
        });
    }
}

/// What the user should know about an answer: the prompt tokens reused
/// from the cache, and the earliest messages left out of a full context.
fn answer_note(g: &Generated) -> String {
    if let Some(served) = &g.served {
        let prompt = served.prompt_tokens.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let host = crate::spec::backend::short_url(&served.backend);
        return format!("{prompt} prompt tokens, {} new tokens, on {host}", g.generated_tokens());
    }
    let mut note = format!(
        "{} prompt tokens, {} reused from the cache; {} new tokens",
        g.prompt_ids.len(),
        g.reused_tokens,
        g.ids.len()
    );
    if g.dropped_messages > 0 {
        note.push_str(&format!(
            ". The {} earliest messages were left out: the conversation is longer than the model's context",
            g.dropped_messages
        ));
    }
    if g.stop == StopReason::ContextFull {
        note.push_str(". The context is full: start a new conversation or delete earlier turns");
    }
    note
}

fn stop_text(stop: StopReason) -> &'static str {
    match stop {
        StopReason::StopToken => "ended by the model",
        StopReason::StopString => "reached a stop string",
        StopReason::MaxTokens => "reached the token limit",
        StopReason::ContextFull => "the context is full",
        StopReason::Cancelled => "stopped",
    }
}

/// Tokens as chips in alternating shades so their boundaries show.
fn tokens_ui(ui: &mut egui::Ui, tokens: &[TokenPiece], shades: [Color32; 2]) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = egui::vec2(2.0, 3.0);
        for (i, t) in tokens.iter().enumerate() {
            let shade = shades[i % 2];
            let text = t.piece.replace('\n', "\\n").replace(' ', "·");
            let id = t.id.map_or_else(|| "id not given by the server".to_owned(), |id| format!("id {id}"));
            let hover = match t.probability {
                Some(p) => format!("{id}, probability {:.1}%", 100.0 * p),
                None => id,
            };
            ui.label(RichText::new(text).monospace().background_color(shade).color(Color32::WHITE))
                .on_hover_text(hover);
        }
    });
}
