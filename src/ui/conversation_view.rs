//! The Text view in chat mode: saved conversations on the left (new, open,
//! rename, delete, export as Markdown), the open conversation in the middle
//! (system prompt, messages with their roles, the answer streaming in; copy,
//! edit and continue, regenerate) and the message box under it.

use std::path::PathBuf;

use egui::RichText;

use crate::io::conversations::SavedConversation;
use crate::spec::conversation::Conversation;
use crate::ui::commands::{ChatCommand, UiCommand};

/// Width of the conversation list.
const LIST_WIDTH: f32 = 210.0;

/// The open conversation and the list of saved ones.
pub struct ConversationView {
    /// The open conversation (saved after every change once it has a message).
    pub conversation: Conversation,
    /// Its file, once saved.
    pub path: Option<PathBuf>,
    /// Saved conversations, newest first.
    pub saved: Vec<SavedConversation>,
    /// The message being written.
    pub input: String,
    /// The message being edited: its index and the new text.
    pub editing: Option<(usize, String)>,
    /// The conversation being renamed: its file and the new title.
    pub renaming: Option<(PathBuf, String)>,
    /// The answer streaming in.
    pub answer: String,
    /// What the last answer cost, or what the user should know about it
    /// (earlier turns left out of the context, tokens reused).
    pub note: Option<String>,
}

impl Default for ConversationView {
    fn default() -> Self {
        Self {
            conversation: Conversation::new(None, Default::default(), 256),
            path: None,
            saved: Vec::new(),
            input: String::new(),
            editing: None,
            renaming: None,
            answer: String::new(),
            note: None,
        }
    }
}

/// What the view needs from the text panel.
pub struct ChatState {
    /// An answer is being generated.
    pub running: bool,
    /// A model is chosen.
    pub has_model: bool,
}

impl ConversationView {
    /// Draws the list and the conversation; actions become commands in `out`.
    pub fn ui(&mut self, ui: &mut egui::Ui, state: &ChatState, out: &mut Vec<UiCommand>) {
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(LIST_WIDTH);
                self.list_ui(ui, state, out);
            });
            ui.separator();
            ui.vertical(|ui| self.conversation_ui(ui, state, out));
        });
    }

    fn list_ui(&mut self, ui: &mut egui::Ui, state: &ChatState, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.strong("Conversations");
            if ui.add_enabled(!state.running, egui::Button::new("New")).clicked() {
                out.push(UiCommand::Chat(ChatCommand::New));
            }
        });
        egui::ScrollArea::vertical().id_salt("conversation-list").max_height(220.0).show(ui, |ui| {
            for saved in &self.saved {
                let open = self.path.as_ref() == Some(&saved.path);
                if let Some((path, title)) = &mut self.renaming
                    && path == &saved.path
                {
                    let field = ui.add(egui::TextEdit::singleline(title).hint_text("Title"));
                    if field.lost_focus() {
                        out.push(UiCommand::Chat(ChatCommand::Rename { path: path.clone(), title: title.clone() }));
                    }
                    continue;
                }
                let label = format!("{} ({})", saved.title, saved.messages);
                let row = ui.add_enabled(!state.running, egui::Button::selectable(open, label));
                if row.clicked() && !open {
                    out.push(UiCommand::Chat(ChatCommand::Open(saved.path.clone())));
                }
                if row.double_clicked() {
                    self.renaming = Some((saved.path.clone(), saved.title.clone()));
                }
            }
        });
        let Some(path) = self.path.clone() else { return };
        ui.horizontal(|ui| {
            if ui.add_enabled(!state.running, egui::Button::new("Rename")).clicked() {
                self.renaming = Some((path.clone(), self.conversation.shown_title()));
            }
            if ui.add_enabled(!state.running, egui::Button::new("Delete")).clicked() {
                out.push(UiCommand::Chat(ChatCommand::Delete(path.clone())));
            }
            if ui.button("Export Markdown").clicked() {
                out.push(UiCommand::Chat(ChatCommand::ExportMarkdown));
            }
        });
    }

    fn conversation_ui(&mut self, ui: &mut egui::Ui, state: &ChatState, out: &mut Vec<UiCommand>) {
        egui::CollapsingHeader::new("System prompt").default_open(!self.conversation.system.is_empty()).show(
            ui,
            |ui| {
                let label = ui.label(RichText::new("Sent before every turn; empty: the model's default").weak());
                ui.add_enabled(
                    !state.running,
                    egui::TextEdit::multiline(&mut self.conversation.system)
                        .desired_rows(2)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(label.id);
            },
        );
        let height = (ui.available_height() - 150.0).max(120.0);
        egui::ScrollArea::vertical().id_salt("messages").max_height(height).stick_to_bottom(true).show(ui, |ui| {
            self.messages_ui(ui, state, out);
        });
        if let Some(note) = &self.note {
            ui.label(RichText::new(note).weak());
        }
        let label = ui.label("Message");
        ui.add(egui::TextEdit::multiline(&mut self.input).desired_rows(3).desired_width(f32::INFINITY))
            .labelled_by(label.id);
        ui.horizontal(|ui| {
            let can_send = !state.running && state.has_model && !self.input.trim().is_empty();
            if ui.add_enabled(can_send, egui::Button::new("Send")).clicked() {
                out.push(UiCommand::Chat(ChatCommand::Send));
            }
            let can_answer = !state.running && state.has_model && !self.conversation.messages.is_empty();
            let regenerate = if self.conversation.awaits_answer() { "Answer" } else { "Regenerate" };
            if ui
                .add_enabled(can_answer, egui::Button::new(regenerate))
                .on_hover_text("Answer the last message again (the cached prompt is reused)")
                .clicked()
            {
                out.push(UiCommand::Chat(ChatCommand::Regenerate));
            }
            if ui.add_enabled(state.running, egui::Button::new("Stop")).clicked() {
                out.push(UiCommand::Chat(ChatCommand::Stop));
            }
        });
    }

    fn messages_ui(&mut self, ui: &mut egui::Ui, state: &ChatState, out: &mut Vec<UiCommand>) {
        if self.conversation.messages.is_empty() && !state.running {
            ui.label(RichText::new("No messages yet: write one below.").weak());
        }
        for (i, message) in self.conversation.messages.iter().enumerate() {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.strong(if message.role == "user" { "You" } else { "Assistant" });
                if ui.small_button("Copy").clicked() {
                    ui.ctx().copy_text(message.content.clone());
                }
                let edit = egui::Button::new("Edit").small();
                if ui.add_enabled(!state.running && self.editing.is_none(), edit).clicked() {
                    self.editing = Some((i, message.content.clone()));
                }
            });
            match &mut self.editing {
                Some((index, text)) if *index == i => {
                    let label = ui.label(RichText::new("Edited message").weak());
                    ui.add(egui::TextEdit::multiline(text).desired_rows(2).desired_width(f32::INFINITY))
                        .labelled_by(label.id);
                    ui.horizontal(|ui| {
                        let continues = message.role == "user";
                        let save = if continues { "Save and continue" } else { "Save" };
                        if ui.button(save).clicked() {
                            out.push(UiCommand::Chat(ChatCommand::Edit { index: i, text: text.clone() }));
                        }
                        if ui.button("Cancel").clicked() {
                            out.push(UiCommand::Chat(ChatCommand::CancelEdit));
                        }
                    });
                }
                _ => {
                    ui.label(&message.content);
                }
            }
        }
        if state.running {
            ui.add_space(4.0);
            ui.horizontal(|ui| {
                ui.strong("Assistant");
                super::busy::busy(ui);
            });
            ui.label(&self.answer);
        }
    }
}
