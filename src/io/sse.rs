//! Server-sent events (the `text/event-stream` format of the WHATWG HTML
//! standard), as OpenAI-compatible servers stream chat and completion
//! tokens: `data:` lines, joined by newlines, make an event at each blank
//! line; `event:` names it, `id:` tags it, lines starting with `:` are
//! comments. Bytes arrive in whatever chunks the connection gives, so the
//! parser keeps a partial line between calls (a `\r` ending one chunk may be
//! half of a `\r\n`). A server that never ends a line or an event cannot make
//! it grow past [`MAX_EVENT_BYTES`].

/// Most bytes one event (its unfinished line included) may take.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// UTF-8's byte-order mark, dropped where the stream starts with it.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, "message" when there is none.
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The last `id:` seen on the stream, if any.
    pub id: Option<String>,
}

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event or line longer than [`MAX_EVENT_BYTES`].
    #[error("the server sent an event of more than {MAX_EVENT_BYTES} bytes")]
    TooLong,
}

/// An incremental parser: feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The unfinished line.
    line: Vec<u8>,
    /// The last chunk ended with `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// Whether the stream's first line (which may start with a byte-order mark) is behind us.
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl SseParser {
    /// Parses `bytes` and returns the events they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let mut line = std::mem::take(&mut self.line);
                    if !std::mem::replace(&mut self.started, true) && line.starts_with(BOM) {
                        line.drain(..BOM.len());
                    }
                    if let Some(event) = self.line_done(&line) {
                        events.push(event);
                    }
                }
                _ => {
                    self.line.push(b);
                    if self.line.len() + self.data.len() + self.event.len() > MAX_EVENT_BYTES {
                        return Err(SseError::TooLong);
                    }
                }
            }
        }
        Ok(events)
    }

    /// Handles one complete line; returns the event a blank line dispatches.
    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            let event = if event.is_empty() { "message".to_owned() } else { event };
            return Some(SseEvent { event, data, id: self.id.clone() });
        }
        if line[0] == b':' {
            return None;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry` sets a reconnection delay, which we do not use; others are ignored.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Vec<SseEvent> {
        SseParser::default().feed(bytes).unwrap()
    }

    fn message(data: &str) -> SseEvent {
        SseEvent { event: "message".into(), data: data.into(), id: None }
    }

    #[test]
    fn an_openai_stream_gives_one_event_per_chunk() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                       : keep-alive\n\n\
                       data: [DONE]\n\n";
        assert_eq!(parse(stream), vec![message("{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}"), message("[DONE]")]);
    }

    #[test]
    fn fields_follow_the_standard() {
        let stream = "\u{FEFF}event: add\r\ndata:  two spaces\rdata\nid: 7\nretry: 100\nnonsense\n\ndata: x\n\n";
        assert_eq!(
            parse(stream.as_bytes()),
            vec![
                SseEvent { event: "add".into(), data: " two spaces\n".into(), id: Some("7".into()) },
                SseEvent { event: "message".into(), data: "x".into(), id: Some("7".into()) },
            ]
        );
        // No data: nothing to dispatch; an unfinished event at the end is not dispatched.
        assert_eq!(parse(b"event: ping\n\ndata: cut"), vec![]);
    }

    #[test]
    fn any_split_into_chunks_gives_the_same_events() {
        let stream = "\u{FEFF}data: a\r\n\r\ndata: b\rdata: c\r\rid: 1\n: note\ndata: é\n\n".as_bytes();
        let whole = parse(stream);
        assert_eq!(whole.len(), 3);
        for cut in 0..=stream.len() {
            for second in cut..=stream.len() {
                let mut parser = SseParser::default();
                let mut events = parser.feed(&stream[..cut]).unwrap();
                events.extend(parser.feed(&stream[cut..second]).unwrap());
                events.extend(parser.feed(&stream[second..]).unwrap());
                assert_eq!(events, whole, "cut at {cut} and {second}");
            }
        }
    }

    #[test]
    fn a_line_that_never_ends_is_refused() {
        let mut parser = SseParser::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut result = Ok(vec![]);
        for _ in 0..5 {
            result = parser.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLong));
    }
}
