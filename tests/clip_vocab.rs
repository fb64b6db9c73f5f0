//! CLIP's tokenizer built from OpenAI's BPE file (what standard single-file
//! checkpoints use, fetched by scripts/fetch-models.sh) against OpenCLIP's
//! own tokenizer on the same file: ids recorded in
//! tests/fixtures/open_clip_tokens.json by tests/reference/open_clip_tokens.py
//! (re-recorded when `DIFFUSERS_PYTHON` names a Python with open_clip_torch).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use latent_studio::diffusion::checkpoint::clip_vocab_path;
use latent_studio::diffusion::clip_tokenizer::ClipTokenizer;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/open_clip_tokens.json";
const PROMPTS: &[&str] = &[
    "a photo of an astronaut riding a horse on mars",
    "Portrait of an old man, highly detailed, 8k, trending on ArtStation",
    "a castle (in the clouds:1.2), [night], sunset!!",
    "café, naïve façade — “quotes” and 猫 emoji 🙂",
    "don't can't we'll they're I'd",
    "",
    "masterpiece, best quality, 1girl, solo, looking at viewer, upper body, smile, outdoors, cherry blossoms, \
     wind, long hair, school uniform, blue sky, clouds, sunlight, depth of field, bokeh, soft focus, film grain, \
     35mm photograph",
];

#[test]
fn clip_vocabulary_tokenizes_as_open_clip_does() {
    let vocab = clip_vocab_path(&common::shipped_models());
    assert!(vocab.is_file(), "{} is missing: run scripts/fetch-models.sh", vocab.display());
    if let Ok(python) = std::env::var("DIFFUSERS_PYTHON") {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("prompts.json");
        std::fs::write(&prompts, serde_json::to_string(PROMPTS).unwrap()).unwrap();
        let status = std::process::Command::new(python)
            .args(["tests/reference/open_clip_tokens.py".as_ref(), prompts.as_os_str(), FIXTURE.as_ref()])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let expected: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let tokenizer = ClipTokenizer::from_clip_bpe(&vocab, true).unwrap();
    assert_eq!(tokenizer.vocab_size(), 49408);
    for (prompt, want) in PROMPTS.iter().zip(&expected) {
        let ids: Vec<u32> = serde_json::from_value(want["ids"].clone()).unwrap();
        assert_eq!(tokenizer.encode(prompt), ids, "{prompt:?}");
    }
    // SD 1.x's tokenizer pads with the end token instead.
    let sd1 = ClipTokenizer::from_clip_bpe(&vocab, false).unwrap();
    assert_eq!(sd1.encode("a cat")[..5], [49406, 320, 2368, 49407, 49407]);
}
