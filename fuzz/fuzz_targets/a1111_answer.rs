//! See `latent_studio::fuzzing::a1111_answer`: the body lives in the library so that
//! `cargo test` compiles it and replays the seeds and past crashes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| latent_studio::fuzzing::a1111_answer(data));
