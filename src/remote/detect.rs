//! Which protocol a server speaks, asked of the server itself.

use super::http::{RemoteError, RemoteServer};
use crate::spec::backend::BackendKind;

/// `OpenAi` if the server lists models at `/v1/models`, else `A1111` if it
/// lists them at `/sdapi/v1/sd-models`; an error naming both answers otherwise.
pub fn detect(server: &RemoteServer) -> Result<BackendKind, RemoteError> {
    let openai = match server.get_json::<serde_json::Value>("/v1/models") {
        Ok(list) if list.get("data").is_some_and(serde_json::Value::is_array) => return Ok(BackendKind::OpenAi),
        Ok(_) => "its /v1/models is not a model list".to_owned(),
        Err(e @ (RemoteError::Connect { .. } | RemoteError::Unauthorized { .. })) => return Err(e),
        Err(e) => e.to_string(),
    };
    let a1111 = match server.get_json::<serde_json::Value>("/sdapi/v1/sd-models") {
        Ok(list) if list.is_array() => return Ok(BackendKind::A1111),
        Ok(_) => "its /sdapi/v1/sd-models is not a model list".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(RemoteError::Invalid(format!("{} speaks neither protocol the studio knows: {openai}; {a1111}", server.base())))
}
