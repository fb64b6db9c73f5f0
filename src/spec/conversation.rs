//! A conversation with a language model as the studio keeps it: the system
//! prompt, the messages with their roles, and the model and sampling settings
//! that answered, so a saved conversation continues where it stopped.

use serde::{Deserialize, Serialize};

use crate::spec::InvalidSetting;
use crate::spec::text::{ChatMessage, GenerateSpec, SamplingParams, TextModelRef};

/// The `format` field of a saved conversation.
pub const CONVERSATION_FORMAT: &str = "latent-studio-conversation";

/// Longest title kept (characters); longer ones are cut.
const MAX_TITLE: usize = 80;

/// One conversation, as saved (JSON, one file each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Always [`CONVERSATION_FORMAT`].
    pub format: String,
    /// Shown in the list; the first message until the user renames it.
    pub title: String,
    /// The model that answers.
    pub model: Option<TextModelRef>,
    /// The system prompt (empty: the template's own default, if any).
    pub system: String,
    /// User and assistant messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Sampling knobs and seed.
    pub sampling: SamplingParams,
    /// Most new tokens per answer.
    pub max_new_tokens: usize,
    /// Answers end before these.
    #[serde(default)]
    pub stop_strings: Vec<String>,
    /// Seconds since the Unix epoch of the last change.
    #[serde(default)]
    pub updated: u64,
}

impl Conversation {
    /// An empty conversation with `model` and these settings.
    pub fn new(model: Option<TextModelRef>, sampling: SamplingParams, max_new_tokens: usize) -> Self {
        Self {
            format: CONVERSATION_FORMAT.to_owned(),
            title: String::new(),
            model,
            system: String::new(),
            messages: Vec::new(),
            sampling,
            max_new_tokens,
            stop_strings: Vec::new(),
            updated: 0,
        }
    }

    /// The title to show: the user's, or the first message's first line.
    pub fn shown_title(&self) -> String {
        if !self.title.trim().is_empty() {
            return self.title.clone();
        }
        let first = self.messages.iter().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
        let line = first.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        if line.is_empty() { "New conversation".to_owned() } else { line.chars().take(MAX_TITLE).collect() }
    }

    /// Appends the user's message.
    pub fn push_user(&mut self, text: &str) {
        self.messages.push(ChatMessage::new("user", text));
    }

    /// Appends the model's answer.
    pub fn push_answer(&mut self, text: &str) {
        self.messages.push(ChatMessage::new("assistant", text));
    }

    /// Drops the last answer so it can be generated again; false if the
    /// conversation does not end with one.
    pub fn drop_last_answer(&mut self) -> bool {
        let ends_with_answer = self.messages.last().is_some_and(|m| m.role == "assistant");
        if ends_with_answer {
            self.messages.pop();
        }
        ends_with_answer
    }

    /// Replaces message `index` and forgets every message after it (they
    /// answered the old text). Returns whether `index` exists.
    pub fn edit(&mut self, index: usize, text: &str) -> bool {
        let Some(message) = self.messages.get_mut(index) else { return false };
        message.content = text.to_owned();
        self.messages.truncate(index + 1);
        true
    }

    /// Whether the model should answer next (the last message is the user's).
    pub fn awaits_answer(&self) -> bool {
        self.messages.last().is_some_and(|m| m.role == "user")
    }

    /// What the model runs to answer the last user message: that message as
    /// the prompt, every earlier one as history.
    pub fn next_turn(&self) -> Result<GenerateSpec, InvalidSetting> {
        let Some((last, earlier)) = self.messages.split_last() else {
            return Err("the conversation has no message to answer".into());
        };
        if last.role != "user" {
            return Err("the conversation already ends with an answer".into());
        }
        Ok(GenerateSpec {
            prompt: last.content.clone(),
            chat: true,
            system: self.system.clone(),
            history: earlier.to_vec(),
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling.clone(),
            stop_strings: self.stop_strings.clone(),
        })
    }

    /// Checks a conversation read from a file: its format, roles and settings.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.format != CONVERSATION_FORMAT {
            return Err(format!("not a conversation (format \"{}\")", self.format).into());
        }
        if let Some(m) = self.messages.iter().find(|m| !matches!(m.role.as_str(), "user" | "assistant")) {
            return Err(format!("unknown role \"{}\" (messages are the user's or the assistant's)", m.role).into());
        }
        if self.max_new_tokens == 0 {
            return Err("max_new_tokens must be at least 1".into());
        }
        self.sampling.validate()
    }

    /// The conversation as Markdown: title, model, system prompt, then each
    /// message under its role.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.shown_title());
        if let Some(model) = &self.model {
            md.push_str(&format!("*Model: {model}*\n\n"));
        }
        if !self.system.trim().is_empty() {
            md.push_str(&format!("## System\n\n{}\n\n", self.system.trim_end()));
        }
        for m in &self.messages {
            let role = if m.role == "user" { "User" } else { "Assistant" };
            md.push_str(&format!("## {role}\n\n{}\n\n", m.content.trim_end()));
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Conversation {
        let mut c = Conversation::new(None, SamplingParams::greedy(), 64);
        c.push_user("Hi\nthere");
        c.push_answer("Hello!");
        c.push_user("Name three colours.");
        c
    }

    #[test]
    fn next_turn_is_the_last_user_message_over_the_rest() {
        let spec = chat().next_turn().unwrap();
        assert_eq!(spec.prompt, "Name three colours.");
        assert_eq!(spec.history.len(), 2);
        assert!(spec.chat);
        let mut answered = chat();
        answered.push_answer("Red.");
        assert!(answered.next_turn().is_err());
        assert!(answered.drop_last_answer());
        assert_eq!(answered.next_turn().unwrap(), spec);
    }

    #[test]
    fn editing_forgets_what_came_after() {
        let mut c = chat();
        assert!(c.edit(0, "Hey"));
        assert_eq!(c.messages.len(), 1);
        assert!(c.awaits_answer());
        assert!(!c.edit(5, "x"));
    }

    #[test]
    fn title_from_the_first_message_until_renamed() {
        let mut c = chat();
        assert_eq!(c.shown_title(), "Hi");
        c.title = "Colours".into();
        assert_eq!(c.shown_title(), "Colours");
        assert!(c.to_markdown().starts_with("# Colours\n"));
        assert!(c.to_markdown().contains("## Assistant\n\nHello!"));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = chat();
        c.validate().unwrap();
        c.messages[1].role = "wizard".into();
        assert!(c.validate().unwrap_err().0.contains("wizard"));
        let mut c = chat();
        c.format = "other".into();
        assert!(c.validate().is_err());
    }
}
