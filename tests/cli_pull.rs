//! `latent-studio pull` against the stand-in Hub, then the pulled model
//! listed by `models --json` and run by `text --model` without a restart
//! of anything: the real SmolLM2 GGUF, served as a Hub repo would serve it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::hub_standin::{StandIn, StandInFile, StandInRepo, gguf_repo};

fn studio(args: &[&str], endpoint: &str, cache: &Path, extra: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latent-studio"))
        .args(args)
        .env("LATENT_STUDIO_MODELS", common::shipped_models())
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

fn success(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_pulled_gguf_is_listed_and_runs() {
    let gguf = common::shipped_models().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let Ok(bytes) = std::fs::read(&gguf) else {
        panic!("{} is missing: run scripts/fetch-models.sh", gguf.display());
    };
    let repo = StandInRepo {
        id: "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF".into(),
        commit: "1111111111222222222233333333334444444444".into(),
        files: vec![
            StandInFile::new("README.md", b"---\nlicense: apache-2.0\n---\n# SmolLM2\n".to_vec(), false),
            StandInFile::new("SmolLM2-135M-Instruct.Q4_1.gguf", bytes, true),
            StandInFile::new("SmolLM2-135M-Instruct.Q8_0.gguf", vec![1; 1000], true),
        ],
        gated: false,
        license: "apache-2.0".into(),
    };
    let server = StandIn::start(vec![repo]);
    let dir = tempfile::tempdir().unwrap();
    let out = studio(&["pull", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"], &server.endpoint, dir.path(), &[]);
    let snapshot = success(&out);
    // No Q4_K_M in this repo: the 4-bit file is chosen, with the card.
    assert!(Path::new(snapshot.trim()).join("SmolLM2-135M-Instruct.Q4_1.gguf").is_file(), "{snapshot}");
    assert!(!Path::new(snapshot.trim()).join("SmolLM2-135M-Instruct.Q8_0.gguf").exists());

    let listed: serde_json::Value =
        serde_json::from_str(&success(&studio(&["models", "--json"], &server.endpoint, dir.path(), &[]))).unwrap();
    let row = listed.as_array().unwrap().iter().find(|r| r["source"] == "hub").unwrap();
    assert_eq!((row["kind"].as_str(), row["license"].as_str()), (Some("text"), Some("apache-2.0")));
    let id = row["text_models"][0].as_str().unwrap().to_owned();
    assert_eq!(id, "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct.Q4_1.gguf");

    // Offline, the pulled model runs.
    let args = ["text", "--model", &id, "--max-tokens", "4", "--json", "--prompt", "The capital of France is"];
    let text: serde_json::Value =
        serde_json::from_str(&success(&studio(&args, &server.endpoint, dir.path(), &[("HF_HUB_OFFLINE", "1")])))
            .unwrap();
    assert!(!text["text"].as_str().unwrap().is_empty(), "{text}");
}

#[test]
fn pull_errors_name_the_repo_the_file_or_the_server() {
    let server = StandIn::start(vec![gguf_repo("owner/tiny-GGUF")]);
    let dir = tempfile::tempdir().unwrap();
    let stderr = |args: &[&str], extra: &[(&str, &str)]| {
        let out = studio(args, &server.endpoint, dir.path(), extra);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    };
    assert!(stderr(&["pull", "owner/missing"], &[]).contains("owner/missing was not found"));
    assert!(stderr(&["pull", "owner/tiny-GGUF", "--file", "nope.gguf"], &[]).contains("no file \"nope.gguf\""));
    assert!(stderr(&["pull", "owner/tiny-GGUF"], &[("HF_HUB_OFFLINE", "1")]).contains("offline"));
    assert!(stderr(&["pull", "../etc"], &[]).contains("is not a repo id"));
    server.faults.lock().unwrap().corrupt = vec!["model-Q4_K_M.gguf".into()];
    assert!(stderr(&["pull", "owner/tiny-GGUF"], &[]).contains("did not match the Hub's checksum"));
    let out = studio(&["pull", "owner/tiny-GGUF", "--file", "model-Q8_0.gguf"], &server.endpoint, dir.path(), &[]);
    success(&out);
}

/// A full disk, as close as a test can get without mounting one: a file-size
/// limit (`ulimit -f`, with SIGXFSZ ignored) makes writes past 2 MiB fail.
/// The pull stops with a message naming the file, leaves no model file where
/// one is expected, and a later pull resumes from the bytes kept.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_stops_cleanly_and_the_pull_resumes_later() {
    let repo = gguf_repo("owner/tiny-GGUF");
    let server = StandIn::start(vec![repo.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let script =
        format!("trap '' XFSZ; ulimit -f 2048; exec {} pull owner/tiny-GGUF", env!("CARGO_BIN_EXE_latent-studio"));
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("LATENT_STUDIO_MODELS", common::shipped_models())
        .env("HF_ENDPOINT", &server.endpoint)
        .env("HF_HUB_CACHE", dir.path())
        .env("HF_HOME", dir.path().join("home"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.status.code().is_some(), "an error, not a signal: {stderr}");
    assert!(stderr.contains("no room left writing") && stderr.contains(".incomplete"), "{stderr}");
    let snapshot = dir.path().join("models--owner--tiny-GGUF/snapshots").join(&repo.commit);
    assert!(!snapshot.join("model-Q4_K_M.gguf").exists(), "no half file where the model is expected");
    server.clear_log();
    let out = studio(&["pull", "owner/tiny-GGUF"], &server.endpoint, dir.path(), &[]);
    success(&out);
    assert_eq!(std::fs::read(snapshot.join("model-Q4_K_M.gguf")).unwrap(), *repo.files[2].bytes);
    assert!(server.requests().iter().any(|r| r.starts_with("GET /cdn/") && r.ends_with(&format!("from {}", 2 << 20))));
}
