//! What a job asks for and what it reports, as plain data (serde, no
//! candle): the settings of an image or a text generation and a training
//! epoch's report. The lowest layer: the views, the worker, the families and
//! the file formats all use these types, so none of them has to import
//! another's code to name them.

pub mod backend;
pub mod conversation;
pub mod image;
pub mod latency;
pub mod latent_control;
pub mod library;
pub mod text;
pub mod train;

/// A setting out of range or inconsistent, with a message naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

impl From<String> for InvalidSetting {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for InvalidSetting {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
