//! The stand-in Hub of the tests (`tests/common/hub_standin.rs`) as a
//! program, for `benches/hub_download_bench.py`: serves one repo with one
//! LFS file of pseudo-random bytes on 127.0.0.1 and prints its endpoint.
//!
//! `cargo run --release --example hub_standin -- REPO FILE MIB [PORT]`
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
    // xorshift bytes: incompressible, reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..mib << 17)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let repo = StandInRepo {
        id: repo,
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        files: vec![
            StandInFile::new("README.md", b"---\nlicense: mit\n---\n".to_vec(), false),
            StandInFile::new(&file, bytes, true),
        ],
        gated: false,
        license: "mit".into(),
    };
    let server = StandIn::start_on(vec![repo], port);
    println!("{}", server.endpoint);
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
