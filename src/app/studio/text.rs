//! The studio's text side: turning the text panel's commands into generation
//! requests and the text thread's events into panel state.

use super::StudioApp;
use crate::app::dialogs::DialogOutcome;
use crate::text::saved_text::text_with_settings;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::ui::status::Notice;
use crate::worker::{SaveTarget, TextModelRef, WorkerEvent, WorkerRequest};

impl StudioApp {
    /// Applies a text-panel command; returns it back if it is not one.
    pub(super) fn apply_text_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::Chat(chat) => self.apply_chat_command(chat),
            UiCommand::SelectTextModel(model) => {
                if let TextModelRef::Id(id) = &model {
                    self.settings.text_model = Some(id.clone());
                }
                // Chat mode follows the model: on for models with a template, off for the rest.
                self.text.chat = self.chat_available(&model);
                self.text.model = Some(model);
            }
            UiCommand::OpenTextModel => self.dialogs.open(|| {
                let path = rfd::FileDialog::new().add_filter("GGUF models", &["gguf"]).pick_file()?;
                Some(DialogOutcome::TextModel(path))
            }),
            UiCommand::Generate => {
                let model = self.text.model.clone()?;
                let spec = self.text.spec();
                if let Err(e) = spec.sampling.validate() {
                    self.notices.push(Notice { text: format!("cannot generate: {e}"), error: true });
                    return None;
                }
                let label = format!("generate with {model}");
                let request = WorkerRequest::Generate { model, spec, kv_cache: self.text.kv_cache };
                let job = self.submit(request, Purpose::Generate, label);
                self.text.begin(job, false);
            }
            UiCommand::SaveText => {
                let (Some(generated), Some(model)) = (&self.text.last, &self.text.model) else { return None };
                let spec = self.text.spec();
                let contents = text_with_settings(&model.to_string(), &self.text.model_name, &spec, generated);
                let target = SaveTarget::Numbered { dir: self.settings.output_dir.clone(), stem: "text".into() };
                self.submit(WorkerRequest::SaveText { contents, target }, Purpose::Save, "save text");
            }
            other => return Some(other),
        }
        None
    }

    /// Whether `model` has a chat template (a file the user opened may: its
    /// metadata is read only when it runs).
    pub(super) fn chat_available(&self, model: &TextModelRef) -> bool {
        match model {
            TextModelRef::Id(id) => self.text_models.iter().any(|m| &m.id == id && m.has_chat_template()),
            TextModelRef::File(_) | TextModelRef::Remote { .. } => true,
        }
    }

    /// Applies a text-thread event; returns it back if it is not one.
    pub(super) fn apply_text_event(&mut self, event: WorkerEvent) -> Option<WorkerEvent> {
        let ours = |job| self.text.running == Some(job);
        match event {
            WorkerEvent::TextStarted { job, model_name, prompt } if ours(job) => self.text.started(model_name, prompt),
            WorkerEvent::TextTokens { job, token, text } if ours(job) => self.text.push(token, &text),
            WorkerEvent::TextDone { job, generated } if ours(job) => {
                if self.text.finish(*generated) {
                    self.save_conversation();
                }
            }
            WorkerEvent::Failed { job, .. } | WorkerEvent::Cancelled { job } if ours(job) => {
                self.text.abort();
                return Some(event); // the status bar reports it too
            }
            WorkerEvent::TextStarted { .. } | WorkerEvent::TextTokens { .. } | WorkerEvent::TextDone { .. } => {}
            other => return Some(other),
        }
        None
    }
}
