//! The stand-in Hub of the tests (`tests/common/hub_standin.rs`) as a
//! program, for `benches/hub_download_bench.py`: serves one repo with one
//! LFS file of pseudo-random bytes on 127.0.0.1 and prints its endpoint.
//!
//! `cargo run --release --example hub_standin -- REPO FILE MIB [PORT]`; FILE
//! may list several files as `NAME:MIB,NAME:MIB`. `HUB_STANDIN_SLOW_MS`
//! stalls each MiB sent that long (to watch a download in the GUI).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark helper: a failed unwrap ends the run

#[path = "../tests/common/hub_standin.rs"]
mod hub_standin;

use hub_standin::{StandIn, StandInFile, StandInRepo};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: hub_standin REPO FILE MIB [PORT]";
    let repo = args.get(1).expect(usage).clone();
    let file = args.get(2).expect(usage).clone();
    let mib: usize = args.get(3).expect(usage).parse().expect("MIB is a number");
    let port: u16 = args.get(4).map_or(0, |p| p.parse().expect("PORT is a number"));
    let mut files = vec![StandInFile::new("README.md", b"---\nlicense: apache-2.0\n---\n".to_vec(), false)];
    for (i, entry) in file.split(',').enumerate() {
        let (name, size) = match entry.split_once(':') {
            Some((name, size)) => (name, size.parse().expect("NAME:MIB")),
            None => (entry, mib),
        };
        files.push(StandInFile::new(name, pseudo_random(size << 20, i as u64), true));
    }
    let repo = StandInRepo {
        id: repo,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        files,
        gated: false,
        license: "apache-2.0".into(),
    };
    let server = StandIn::start_on(vec![repo], port);
    if let Some(ms) = std::env::var("HUB_STANDIN_SLOW_MS").ok().and_then(|v| v.parse().ok()) {
        server.faults.lock().unwrap().slow_ms = ms;
    }
    println!("{}", server.endpoint);
    // Serve until killed.
    loop {
        std::thread::park();
    }
}

/// xorshift bytes: incompressible, reproducible.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
