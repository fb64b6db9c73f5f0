//! The Text view's conversations: answering the open one with the panel's
//! model and settings, editing and regenerating, and keeping every
//! conversation saved in `OUTPUT/conversations/` (one JSON file each).
//!
//! The files are small and written here, on the UI thread, in the order the
//! changes happen; an answer streaming in is not written until it is done.

use std::path::{Path, PathBuf};

use super::StudioApp;
use crate::history::trash::{home_trash, move_to_trash};
use crate::io::conversations::{self, SavedConversation};
use crate::io::output::write_new_file;
use crate::spec::conversation::Conversation;
use crate::ui::commands::{ChatCommand, UiCommand};
use crate::ui::jobs::Purpose;
use crate::ui::status::Notice;
use crate::worker::WorkerRequest;

impl StudioApp {
    /// The folder conversations are saved in.
    pub fn conversations_dir(&self) -> PathBuf {
        self.settings.output_dir.join("conversations")
    }

    /// Applies a conversation command.
    pub(super) fn apply_chat_command(&mut self, command: ChatCommand) {
        let view = &mut self.text.chat_view;
        match command {
            ChatCommand::Send => {
                let message = std::mem::take(&mut view.input);
                if message.trim().is_empty() {
                    return;
                }
                view.conversation.push_user(message.trim_end());
                self.answer();
            }
            ChatCommand::Regenerate => {
                view.conversation.drop_last_answer();
                self.answer();
            }
            ChatCommand::Stop => {
                if let Some(job) = self.text.running {
                    self.apply(UiCommand::Cancel(job));
                }
            }
            ChatCommand::Edit { index, text } => {
                view.editing = None;
                if view.conversation.edit(index, &text) {
                    if view.conversation.awaits_answer() { self.answer() } else { self.save_conversation() }
                }
            }
            ChatCommand::CancelEdit => view.editing = None,
            ChatCommand::New => {
                view.conversation = Conversation::new(self.text.model.clone(), self.text.sampling.clone(), 256);
                view.path = None;
                view.note = None;
                view.editing = None;
                self.settings.conversation = None;
            }
            ChatCommand::Open(path) => self.open_conversation(&path),
            ChatCommand::Rename { path, title } => {
                view.renaming = None;
                self.rename_conversation(&path, title.trim());
            }
            ChatCommand::Delete(path) => self.delete_conversation(&path),
            ChatCommand::ExportMarkdown => self.export_conversation(),
        }
    }

    /// Answers the open conversation's last message with the panel's model
    /// and settings (which the conversation then keeps).
    fn answer(&mut self) {
        let Some(model) = self.text.model.clone() else {
            self.notices.push(Notice { text: "choose a language model first".into(), error: true });
            return;
        };
        if let Err(e) = self.text.sampling.validate() {
            self.notices.push(Notice { text: format!("cannot generate: {e}"), error: true });
            return;
        }
        let stop_strings = self.text.stop_strings();
        let conversation = &mut self.text.chat_view.conversation;
        conversation.model = Some(model.clone());
        conversation.sampling = self.text.sampling.clone();
        conversation.max_new_tokens = self.text.max_tokens;
        conversation.stop_strings = stop_strings;
        let spec = match conversation.next_turn() {
            Ok(spec) => spec,
            Err(e) => {
                self.notices.push(Notice { text: format!("nothing to answer: {e}"), error: true });
                return;
            }
        };
        self.save_conversation();
        let label = format!("answer with {model}");
        let request = WorkerRequest::Generate { model, spec, kv_cache: self.text.kv_cache };
        let job = self.submit(request, Purpose::Generate, label);
        self.text.begin(job, true);
    }

    /// Writes the open conversation to its file (a new one the first time).
    pub(super) fn save_conversation(&mut self) {
        let dir = self.conversations_dir();
        let view = &mut self.text.chat_view;
        if view.conversation.messages.is_empty() {
            return;
        }
        let path = view.path.get_or_insert_with(|| conversations::new_path(&dir, &view.conversation.shown_title()));
        let path = path.clone();
        if let Err(e) = conversations::save(&path, &mut view.conversation) {
            self.notices.push(Notice { text: format!("cannot save the conversation: {e}"), error: true });
            return;
        }
        // The list changes by this one entry: no need to read the folder again.
        conversations::upsert(&mut view.saved, SavedConversation::of(&path, &view.conversation));
        self.settings.conversation = Some(path);
    }

    /// Lists the saved conversations; with `report`, files that do not read are named.
    fn refresh_conversations(&mut self, report: bool) {
        let (saved, failed) = conversations::list(&self.conversations_dir());
        self.text.chat_view.saved = saved;
        if report {
            let skipped =
                failed.into_iter().map(|e| Notice { text: format!("skipped conversation: {e}"), error: true });
            self.notices.extend(skipped);
        }
    }

    /// At startup: the list, and the conversation open when the studio closed.
    pub(super) fn restore_conversation(&mut self) {
        self.refresh_conversations(true);
        if let Some(path) = self.settings.conversation.clone() {
            self.open_conversation(&path);
        }
    }

    /// Opens a saved conversation with its model and sampling settings.
    fn open_conversation(&mut self, path: &Path) {
        let conversation = match conversations::load(path) {
            Ok(c) => c,
            Err(e) => {
                self.notices.push(Notice { text: format!("cannot open the conversation: {e}"), error: true });
                self.settings.conversation = None;
                return;
            }
        };
        if let Some(model) = &conversation.model {
            self.text.model = Some(model.clone());
        }
        self.text.sampling = conversation.sampling.clone();
        self.text.max_tokens = conversation.max_new_tokens.clamp(1, 2048);
        self.text.stop =
            conversation.stop_strings.iter().map(|s| s.replace('\n', "\\n")).collect::<Vec<_>>().join("\n");
        self.text.chat = true;
        let view = &mut self.text.chat_view;
        view.conversation = conversation;
        view.path = Some(path.to_owned());
        view.note = None;
        view.editing = None;
        view.answer.clear();
        self.settings.conversation = Some(path.to_owned());
    }

    fn rename_conversation(&mut self, path: &Path, title: &str) {
        let view = &mut self.text.chat_view;
        let open = view.path.as_deref() == Some(path);
        let loaded = if open { Ok(view.conversation.clone()) } else { conversations::load(path) };
        let renamed = loaded.and_then(|mut c| {
            c.title = title.to_owned();
            conversations::save(path, &mut c).map(|()| c)
        });
        match renamed {
            Ok(c) => {
                conversations::upsert(&mut view.saved, SavedConversation::of(path, &c));
                if open {
                    view.conversation = c;
                }
            }
            Err(e) => self.notices.push(Notice { text: format!("cannot rename the conversation: {e}"), error: true }),
        }
    }

    /// Moves a conversation's file to the trash (file managers restore it from there).
    fn delete_conversation(&mut self, path: &Path) {
        let Some(trash) = home_trash() else {
            self.notices.push(Notice { text: "no home folder: no trash to move files to".into(), error: true });
            return;
        };
        match move_to_trash(path, &trash) {
            Ok(_) => self.notices.push(Notice { text: format!("moved {} to the trash", path.display()), error: false }),
            Err(e) => {
                self.notices.push(Notice { text: format!("cannot delete the conversation: {e}"), error: true });
                return;
            }
        }
        if self.text.chat_view.path.as_deref() == Some(path) {
            self.apply_chat_command(ChatCommand::New);
        }
        self.text.chat_view.saved.retain(|e| e.path != path);
    }

    /// Writes the open conversation as Markdown beside its file (never over an existing file).
    fn export_conversation(&mut self) {
        let view = &self.text.chat_view;
        let Some(path) = &view.path else { return };
        let markdown = view.conversation.to_markdown();
        let stem = path.file_stem().map_or_else(|| "conversation".into(), |s| s.to_string_lossy().into_owned());
        let dir = path.parent().unwrap_or(Path::new("."));
        let target = conversations::free_path(dir, &stem, "md");
        let notice = match write_new_file(&target, markdown.as_bytes()) {
            Ok(()) => Notice { text: format!("exported {}", target.display()), error: false },
            Err(e) => Notice { text: format!("cannot export the conversation: {e}"), error: true },
        };
        self.notices.push(notice);
    }
}
