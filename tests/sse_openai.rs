//! Our server-sent-events parser against the official `openai` Python
//! client's decoder (`openai._streaming.SSEDecoder`, from PyPI), on the same
//! bytes cut into chunks in every way: the events, their names, data and ids
//! agree. The streams are the shapes servers send: each event carries data.
//! (Where a stream has an event with no `data:` line the two differ on
//! purpose: the WHATWG rules, which we follow, dispatch nothing, where the
//! client yields an empty event.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use latent_studio::io::sse::SseParser;

const STREAMS: [&[u8]; 5] = [
    b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\n",
    b"event: progress\r\nid: 7\r\ndata: line one\r\ndata:line two\r\ndata\r\n\r\ndata: after id\r\n\r\n",
    b"data: carriage\rdata: returns\r\rretry: 100\rdata: x\r\r",
    b"data: caf\xc3\xa9 \xe2\x9c\x93\n\nunknown: field\ndata: {\"a\": 1}\n\n:comment only\ndata: end\n\n",
    b"data: one\n\ndata: two\nid: 3\n\ndata: three\n\n",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every stream cut at every split point (two chunks), plus byte by byte.
fn chunkings() -> Vec<Vec<&'static [u8]>> {
    let mut all = Vec::new();
    for stream in STREAMS {
        for cut in 0..=stream.len() {
            all.push(vec![&stream[..cut], &stream[cut..]]);
        }
        all.push(stream.chunks(1).collect());
    }
    all
}

fn ours(chunks: &[&[u8]]) -> serde_json::Value {
    let mut parser = SseParser::default();
    let events: Vec<_> = chunks.iter().flat_map(|c| parser.feed(c).unwrap()).collect();
    events
        .into_iter()
        .map(|e| {
            let event = (e.event != "message").then_some(e.event);
            serde_json::json!({ "event": event, "data": e.data, "id": e.id })
        })
        .collect()
}

#[test]
fn events_equal_the_openai_clients_decoder() {
    let chunkings = chunkings();
    let input: Vec<Vec<String>> = chunkings.iter().map(|c| c.iter().map(|b| hex(b)).collect()).collect();
    let mut child = Command::new(common::servers::llama_venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_sse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(theirs.len(), chunkings.len());
    for (chunks, theirs) in chunkings.iter().zip(&theirs) {
        assert_eq!(&ours(chunks), theirs, "chunks {chunks:?}");
    }
    assert_eq!(theirs[0].as_array().unwrap().len(), 2, "the first stream has two events");
}
