//! The remote backends in the app: set from the settings at start and when
//! the user adds or removes one (its key goes to the owner-only key file,
//! never to the settings), and their state read once per frame for the
//! Models view and the pickers.

use super::StudioApp;
use crate::remote::keys::KeyStore;
use crate::ui::commands::UiCommand;
use crate::ui::status::Notice;

impl StudioApp {
    /// Applies a backend command; returns it back if it is not one.
    pub(super) fn apply_backend_command(&mut self, command: UiCommand) -> Option<UiCommand> {
        match command {
            UiCommand::AddBackend { config, key } => {
                if let Some(key) = key {
                    let key_text = key.secret();
                    let saved = self.key_store.as_ref().map(|store| store.set(&config.url, Some(key_text)));
                    match saved {
                        Some(Ok(())) => {}
                        Some(Err(e)) => {
                            self.notices.push(Notice {
                                text: format!("cannot save the key of {}: {e}", config.url),
                                error: true,
                            });
                        }
                        None => self
                            .notices
                            .push(Notice { text: "no place to keep API keys (no HOME)".into(), error: true }),
                    }
                }
                if !self.settings.backends.contains(&config) {
                    self.settings.backends.push(config);
                }
                self.use_backends();
            }
            UiCommand::RemoveBackend(config) => {
                self.settings.backends.retain(|b| *b != config);
                if let Some(store) = &self.key_store
                    && !self.settings.backends.iter().any(|b| b.url == config.url)
                {
                    let _ = store.set(&config.url, None);
                }
                self.use_backends();
            }
            other => return Some(other),
        }
        None
    }

    /// Hands the settings' backends, with their keys, to the worker's pools.
    pub(super) fn use_backends(&mut self) {
        let keys = self.key_store.as_ref().map(KeyStore::load).unwrap_or_default();
        self.worker.backends().set(&self.settings.backends, &keys);
        self.backend_views = self.worker.backends().views();
    }

    /// Keeps API keys in `store` instead of the user's config folder (tests).
    pub fn use_key_store(&mut self, store: KeyStore) {
        self.key_store = Some(store);
        self.use_backends();
    }

    /// The remote backends' state as last read.
    pub fn backend_views(&self) -> &[crate::spec::backend::BackendView] {
        &self.backend_views
    }

    /// Reads the backends' state for this frame.
    pub(super) fn refresh_backend_views(&mut self) {
        if !self.settings.backends.is_empty() {
            self.backend_views = self.worker.backends().views();
        }
    }
}
