//! Text generation on an OpenAI-compatible server (`/v1/chat/completions`
//! for chats, `/v1/completions` for plain continuations), streamed as
//! server-sent events. Every sampling setting goes out under the names the
//! common servers read: OpenAI's (`temperature`, `top_p`, `seed`, `stop`,
//! `max_tokens`), and the extensions llama.cpp's server, llama-cpp-python and
//! vLLM accept (`top_k`, `min_p`, `repeat_penalty` / `repetition_penalty`,
//! `repeat_last_n`); servers ignore the names they do not know.

use std::io::Read;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{RemoteError, RemoteServer};
use crate::io::sse::SseParser;
use crate::spec::text::{ChatMessage, GenerateSpec, Generated, RemoteToken, Served, StopReason};

/// `GET /v1/models`: the ids of the models the server offers.
pub fn list_models(server: &RemoteServer) -> Result<Vec<String>, RemoteError> {
    #[derive(Deserialize)]
    struct Model {
        id: String,
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<Model>,
    }
    let list: List = server.get_json("/v1/models")?;
    Ok(list.data.into_iter().map(|m| m.id).collect())
}

/// What the caller is told as the stream arrives: the tokens of this chunk
/// that the server described (none if it returns no log-probabilities) and
/// the new text.
pub type OnText<'a> = dyn FnMut(&[RemoteToken], &str) + 'a;

/// How a remote generation is asked for, besides the spec.
#[derive(Clone, Debug, Default)]
pub struct RemoteText {
    /// The server's model id.
    pub model: String,
    /// Alternatives per token to ask log-probabilities for (0: none asked).
    pub top_logprobs: usize,
}

/// Generates `spec` on `server`, streaming. `cancel` is checked between the
/// stream's chunks; cancelling closes the connection, which stops the server.
pub fn generate(
    server: &RemoteServer,
    request: &RemoteText,
    spec: &GenerateSpec,
    cancel: &dyn Fn() -> bool,
    on_text: &mut OnText,
) -> Result<Generated, RemoteError> {
    spec.sampling.validate().map_err(|e| RemoteError::Invalid(e.to_string()))?;
    let path = if spec.chat { "/v1/chat/completions" } else { "/v1/completions" };
    let body = request_body(request, spec);
    let start = Instant::now();
    let mut reader = server.post_stream(path, &body)?;
    let mut stream = StreamState::new(spec.chat);
    let mut parser = SseParser::default();
    let mut buf = vec![0u8; 16 << 10];
    let mut first_token_at = None;
    let stop = 'stream: loop {
        if cancel() {
            break StopReason::Cancelled;
        }
        let n = reader.read(&mut buf).map_err(|e| server.dropped(path, &e.to_string()))?;
        if n == 0 {
            break stream.finish.ok_or_else(|| server.dropped(path, "the stream ended before the answer did"))?;
        }
        let events = parser.feed(&buf[..n]).map_err(|e| server.bad_answer(path, &e.to_string()))?;
        for event in events {
            if event.data == "[DONE]" {
                stream.done = true;
                break;
            }
            let chunk: Value =
                serde_json::from_str(&event.data).map_err(|e| server.bad_answer(path, &e.to_string()))?;
            let (tokens, text) = stream.chunk(&chunk).map_err(|detail| server.bad_answer(path, &detail))?;
            if !text.is_empty() || !tokens.is_empty() {
                first_token_at.get_or_insert_with(Instant::now);
                on_text(&tokens, &text);
                if cancel() {
                    break 'stream StopReason::Cancelled;
                }
            }
        }
        if stream.done {
            break stream.finish.unwrap_or(StopReason::StopToken);
        }
    };
    drop(reader);
    let first = first_token_at.unwrap_or_else(Instant::now);
    let completion_tokens = stream.completion_tokens.unwrap_or(stream.chunks);
    let ids: Vec<u32> = stream.tokens.iter().map_while(|t| t.id).collect();
    let ids = if ids.len() == stream.tokens.len() { ids } else { Vec::new() };
    Ok(Generated {
        prompt_ids: Vec::new(),
        ids,
        text: stream.text,
        stop,
        prompt_seconds: (first - start).as_secs_f64(),
        generate_seconds: first.elapsed().as_secs_f64(),
        reused_tokens: 0,
        dropped_messages: 0,
        served: Some(Served {
            backend: server.base().to_owned(),
            model: request.model.clone(),
            prompt_tokens: stream.prompt_tokens,
            completion_tokens,
            tokens: stream.tokens,
        }),
    })
}

/// A whole event stream as [`generate`] reads it: the text, the tokens and
/// why it ended (the fuzz target's body: a lying server gets an error).
pub fn decode_stream(bytes: &[u8], chat: bool) -> Result<(String, Vec<RemoteToken>, Option<StopReason>), String> {
    let mut stream = StreamState::new(chat);
    for event in SseParser::default().feed(bytes).map_err(|e| e.to_string())? {
        if event.data == "[DONE]" {
            break;
        }
        let chunk: Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
        stream.chunk(&chunk)?;
    }
    Ok((stream.text, stream.tokens, stream.finish))
}

/// The JSON body for `spec`.
fn request_body(request: &RemoteText, spec: &GenerateSpec) -> Value {
    let s = &spec.sampling;
    let mut body = json!({
        "model": request.model,
        "max_tokens": spec.max_new_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "min_p": s.min_p,
        "repeat_penalty": s.repeat_penalty,
        "repetition_penalty": s.repeat_penalty,
        "repeat_last_n": s.repeat_window,
        "frequency_penalty": s.frequency_penalty,
        "presence_penalty": s.presence_penalty,
        "seed": s.seed,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !spec.stop_strings.is_empty() {
        body["stop"] = json!(spec.stop_strings);
    }
    if spec.chat {
        body["messages"] = json!(chat_messages(spec));
        if request.top_logprobs > 0 {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(request.top_logprobs);
        }
    } else {
        body["prompt"] = json!(spec.prompt);
        if request.top_logprobs > 0 {
            body["logprobs"] = json!(request.top_logprobs);
        }
    }
    body
}

/// The system prompt (if any), the earlier turns and the new message.
pub fn chat_messages(spec: &GenerateSpec) -> Vec<ChatMessage> {
    let system = (!spec.system.trim().is_empty()).then(|| ChatMessage::new("system", spec.system.clone()));
    system
        .into_iter()
        .chain(spec.history.iter().cloned())
        .chain([ChatMessage::new("user", spec.prompt.clone())])
        .collect()
}

/// What the chunks so far added up to.
struct StreamState {
    chat: bool,
    text: String,
    tokens: Vec<RemoteToken>,
    /// Chunks that carried text (the token count when the server gives none).
    chunks: usize,
    finish: Option<StopReason>,
    done: bool,
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
}

impl StreamState {
    fn new(chat: bool) -> Self {
        Self {
            chat,
            text: String::new(),
            tokens: Vec::new(),
            chunks: 0,
            finish: None,
            done: false,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    /// Takes one chunk in; returns its tokens and text.
    fn chunk(&mut self, chunk: &Value) -> Result<(Vec<RemoteToken>, String), String> {
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            return Err(format!("the server reported an error mid-stream: {message}"));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            let count = |key| usage.get(key).and_then(Value::as_u64).map(|n| n as usize);
            self.prompt_tokens = count("prompt_tokens").or(self.prompt_tokens);
            self.completion_tokens = count("completion_tokens").or(self.completion_tokens);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok((Vec::new(), String::new()));
        };
        let text = if self.chat { choice.pointer("/delta/content") } else { choice.get("text") };
        let text = text.and_then(Value::as_str).unwrap_or("").to_owned();
        let tokens = match choice.get("logprobs").filter(|l| !l.is_null()) {
            Some(logprobs) if self.chat => chat_tokens(logprobs)?,
            Some(logprobs) => completion_tokens(logprobs)?,
            None => Vec::new(),
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(match reason {
                "length" => StopReason::MaxTokens,
                _ => StopReason::StopToken,
            });
        }
        if !text.is_empty() {
            self.chunks += 1;
        }
        self.text.push_str(&text);
        self.tokens.extend(tokens.iter().cloned());
        Ok((tokens, text))
    }
}

/// Chat log-probabilities: `{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}`.
fn chat_tokens(logprobs: &Value) -> Result<Vec<RemoteToken>, String> {
    #[derive(Deserialize)]
    struct Alternative {
        token: String,
        logprob: f32,
    }
    #[derive(Deserialize)]
    struct Token {
        token: String,
        logprob: f32,
        #[serde(default)]
        top_logprobs: Vec<Alternative>,
    }
    let Some(content) = logprobs.get("content").filter(|c| !c.is_null()) else {
        return Ok(Vec::new());
    };
    let tokens: Vec<Token> = serde_json::from_value(content.clone()).map_err(|e| format!("logprobs: {e}"))?;
    Ok(tokens
        .into_iter()
        .map(|t| RemoteToken {
            id: token_id(&t.token),
            top: t.top_logprobs.into_iter().map(|a| (a.token, a.logprob)).collect(),
            text: t.token,
            logprob: t.logprob,
        })
        .collect())
}

/// Completion log-probabilities: parallel lists `tokens`, `token_logprobs`
/// and `top_logprobs` (one `{token: logprob}` map per token).
fn completion_tokens(logprobs: &Value) -> Result<Vec<RemoteToken>, String> {
    #[derive(Deserialize)]
    struct Lists {
        #[serde(default)]
        tokens: Vec<String>,
        #[serde(default)]
        token_logprobs: Vec<Option<f32>>,
        #[serde(default)]
        top_logprobs: Vec<Option<serde_json::Map<String, Value>>>,
    }
    let lists: Lists = serde_json::from_value(logprobs.clone()).map_err(|e| format!("logprobs: {e}"))?;
    Ok(lists
        .tokens
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let mut top: Vec<(String, f32)> = lists
                .top_logprobs
                .get(i)
                .and_then(Option::as_ref)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()? as f32))).collect())
                .unwrap_or_default();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            RemoteToken {
                id: token_id(&text),
                logprob: lists.token_logprobs.get(i).copied().flatten().unwrap_or(f32::NAN),
                text,
                top,
            }
        })
        .collect())
}

/// vLLM's `return_tokens_as_token_ids` writes tokens as `token_id:N`.
fn token_id(token: &str) -> Option<u32> {
    token.strip_prefix("token_id:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::text::SamplingParams;

    fn spec(chat: bool) -> GenerateSpec {
        GenerateSpec {
            prompt: "Hi".into(),
            chat,
            system: "Be brief.".into(),
            history: vec![ChatMessage::new("user", "Q"), ChatMessage::new("assistant", "A")],
            max_new_tokens: 7,
            sampling: SamplingParams::greedy(),
            stop_strings: vec!["\n".into()],
        }
    }

    #[test]
    fn bodies_carry_every_setting() {
        let request = RemoteText { model: "m".into(), top_logprobs: 2 };
        let chat = request_body(&request, &spec(true));
        let roles: Vec<&str> =
            chat["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(chat["messages"][3]["content"], "Hi");
        for (key, value) in [("max_tokens", json!(7)), ("temperature", json!(0.0)), ("stop", json!(["\n"]))] {
            assert_eq!(chat[key], value, "{key}");
        }
        assert_eq!((chat["logprobs"].clone(), chat["top_logprobs"].clone()), (json!(true), json!(2)));
        let plain = request_body(&request, &spec(false));
        assert_eq!((plain["prompt"].clone(), plain["logprobs"].clone()), (json!("Hi"), json!(2)));
        assert!(plain.get("messages").is_none());
    }

    #[test]
    fn chunks_of_both_kinds() {
        let mut chat = StreamState::new(true);
        let chunk = json!({"choices": [{"delta": {"content": " glad"}, "logprobs": {"content": [
            {"token": " glad", "logprob": -1.5, "top_logprobs": [{"token": " glad", "logprob": -1.5}, {"token": " here", "logprob": -1.8}]}
        ]}, "finish_reason": null}]});
        let (tokens, text) = chat.chunk(&chunk).unwrap();
        assert_eq!(text, " glad");
        assert_eq!(tokens[0].top, [(" glad".to_owned(), -1.5), (" here".to_owned(), -1.8)]);
        chat.chunk(&json!({"choices": [{"delta": {}, "finish_reason": "length"}]})).unwrap();
        chat.chunk(&json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 1}})).unwrap();
        assert_eq!(
            (chat.finish, chat.prompt_tokens, chat.completion_tokens),
            (Some(StopReason::MaxTokens), Some(30), Some(1))
        );

        let mut plain = StreamState::new(false);
        let chunk = json!({"choices": [{"text": "token_id:42", "logprobs": {
            "tokens": ["token_id:42"], "token_logprobs": [-0.1], "top_logprobs": [{"token_id:42": -0.1, "token_id:7": -2.5}]
        }, "finish_reason": "stop"}]});
        let (tokens, _) = plain.chunk(&chunk).unwrap();
        assert_eq!((tokens[0].id, tokens[0].top[1].clone()), (Some(42), ("token_id:7".to_owned(), -2.5)));
        assert_eq!(plain.finish, Some(StopReason::StopToken));
        assert!(plain.chunk(&json!({"error": {"message": "boom"}})).unwrap_err().contains("boom"));
    }
}
