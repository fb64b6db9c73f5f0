//! Behaviour kept byte for byte: a fixed list of commands covering every
//! family (VAE sample/decode/encode/interpolate, GAN sample with truncation,
//! emoji-ldm with each sampler, SmolLM2 and the character GPT greedy, `info`
//! on a PNG) whose outputs must hash as recorded in
//! `tests/fixtures/behaviour.json`. Recorded before the family-first move and
//! checked after it; a change of numerics anywhere shows up here.
//!
//! Floating-point results depend on which SIMD kernels the CPU picks at run
//! time (AVX-512, AVX2 or portable), so hashes are kept per instruction-set
//! class. On a class with no recording the test says so and checks that two
//! runs of the list agree instead. `RECORD_BEHAVIOUR=1 cargo test --test
//! behaviour` records the current machine's class.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{s, shipped_models, studio};

/// The commands; `{dir}` is the output folder. The last element names the
/// output: a file in `{dir}` or `stdout`.
const COMMANDS: &[(&str, &[&str], &str)] = &[
    (
        "vae-sample",
        &["sample", "--model", "fashion-16d", "--seed", "7", "--count", "4", "--out", "{dir}/vae.png"],
        "vae.png",
    ),
    (
        "vae-decode",
        &["decode", "--model", "digits-2d", "--latent", "0.5,-1.2", "--out", "{dir}/digit.png"],
        "digit.png",
    ),
    ("vae-encode", &["encode", "--model", "digits-2d", "--image", "{dir}/digit.png"], "stdout"),
    (
        "vae-interpolate",
        &[
            "interpolate",
            "--model",
            "fashion-16d",
            "--from-seed",
            "1",
            "--to-seed",
            "2",
            "--frames",
            "4",
            "--out",
            "{dir}/walk.gif",
        ],
        "walk.gif",
    ),
    (
        "gan-sample",
        &["sample", "--model", "emoji-dcgan", "--count", "4", "--truncation", "0.7", "--out", "{dir}/gan.png"],
        "gan.png",
    ),
    (
        "ldm-ddim",
        &[
            "generate",
            "--model",
            "emoji-ldm",
            "--prompt",
            "red heart",
            "--seed",
            "3",
            "--sampler",
            "ddim",
            "--steps",
            "8",
            "--out",
            "{dir}/ddim.png",
        ],
        "ddim.png",
    ),
    (
        "ldm-ddpm",
        &[
            "generate",
            "--model",
            "emoji-ldm",
            "--prompt",
            "cat",
            "--seed",
            "4",
            "--sampler",
            "ddpm",
            "--steps",
            "8",
            "--out",
            "{dir}/ddpm.png",
        ],
        "ddpm.png",
    ),
    (
        "ldm-euler-a",
        &[
            "generate",
            "--model",
            "emoji-ldm",
            "--prompt",
            "smiling face",
            "--negative",
            "blurry",
            "--seed",
            "5",
            "--sampler",
            "euler-a",
            "--steps",
            "8",
            "--out",
            "{dir}/euler.png",
        ],
        "euler.png",
    ),
    ("png-info", &["info", "{dir}/ddim.png"], "stdout"),
    (
        "char-gpt-greedy",
        &["text", "--model", "shakespeare-char", "--prompt", "ROMEO:", "--max-tokens", "60", "--temperature", "0"],
        "stdout",
    ),
    (
        "smollm2-greedy",
        &[
            "text",
            "--model",
            "smollm2-135m-instruct",
            "--chat",
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "16",
            "--temperature",
            "0",
        ],
        "stdout",
    ),
];

/// FNV-1a, 64 bits: enough to notice a changed byte, with no dependency.
fn fnv64(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// Which SIMD kernels this CPU gets: results are only bit-equal within a class.
fn isa_class() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "x86_64-avx512";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "x86_64-avx2";
        }
    }
    std::env::consts::ARCH
}

/// Runs every command into `dir` and hashes each output. Commands whose
/// model is not installed (SmolLM2 comes from `scripts/fetch-models.sh`) are
/// left out.
fn run_all(dir: &Path) -> BTreeMap<String, String> {
    let smollm2 = shipped_models().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut hashes = BTreeMap::new();
    for (name, args, output) in COMMANDS {
        if args.contains(&"smollm2-135m-instruct") && !smollm2.exists() {
            eprintln!("{name}: SmolLM2 is not fetched (scripts/fetch-models.sh); left out");
            continue;
        }
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", s(dir))).collect();
        let out = studio(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr));
        let bytes = if *output == "stdout" { out.stdout } else { std::fs::read(dir.join(output)).unwrap() };
        hashes.insert(name.to_string(), fnv64(&bytes));
    }
    hashes
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/behaviour.json")
}

#[test]
fn every_family_gives_the_recorded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let hashes = run_all(dir.path());
    let mut recorded: BTreeMap<String, BTreeMap<String, String>> =
        std::fs::read_to_string(fixture()).ok().map(|text| serde_json::from_str(&text).unwrap()).unwrap_or_default();
    let class = isa_class();
    if std::env::var_os("RECORD_BEHAVIOUR").is_some() {
        recorded.insert(class.to_string(), hashes);
        std::fs::write(fixture(), serde_json::to_string_pretty(&recorded).unwrap() + "\n").unwrap();
        return;
    }
    match recorded.get(class) {
        Some(expected) => {
            for (name, hash) in &hashes {
                assert_eq!(Some(hash), expected.get(name), "{name}: the output changed (CPU class {class})");
            }
        }
        None => {
            eprintln!("no recording for CPU class {class}: checking that two runs agree instead");
            let again = tempfile::tempdir().unwrap();
            assert_eq!(hashes, run_all(again.path()));
        }
    }
}
