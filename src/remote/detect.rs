//! Which protocols a server speaks, asked of the server itself. One server
//! may speak both (another studio's `serve`; stable-diffusion.cpp's server
//! lists its image model at `/v1/models` too).

use super::http::{RemoteError, RemoteServer};
use crate::spec::backend::BackendKind;

/// The protocols `server` answers: `OpenAi` if it lists models at
/// `/v1/models`, `A1111` if it lists them at `/sdapi/v1/sd-models`; an
/// error naming both answers if neither.
pub fn detect(server: &RemoteServer) -> Result<Vec<BackendKind>, RemoteError> {
    let mut kinds = Vec::new();
    let openai = match server.get_json::<serde_json::Value>("/v1/models") {
        Ok(list) if list.get("data").is_some_and(serde_json::Value::is_array) => {
            kinds.push(BackendKind::OpenAi);
            String::new()
        }
        Ok(_) => "its /v1/models is not a model list".to_owned(),
        Err(e @ (RemoteError::Connect { .. } | RemoteError::Unauthorized { .. })) => return Err(e),
        Err(e) => e.to_string(),
    };
    let a1111 = match server.get_json::<serde_json::Value>("/sdapi/v1/sd-models") {
        Ok(list) if list.is_array() => {
            kinds.push(BackendKind::A1111);
            String::new()
        }
        Ok(_) => "its /sdapi/v1/sd-models is not a model list".to_owned(),
        Err(e) => e.to_string(),
    };
    if kinds.is_empty() {
        return Err(RemoteError::Invalid(format!(
            "{} speaks neither protocol the studio knows: {openai}; {a1111}",
            server.base()
        )));
    }
    Ok(kinds)
}
