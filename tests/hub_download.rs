//! The Hub client against a stand-in Hub on 127.0.0.1 (`common/hub_standin.rs`):
//! repo descriptions, downloads that resume after a cut connection, a pause
//! or a restart, checksums, gated and missing repos, offline mode, and
//! Python's `huggingface_hub` downloading from the same server into the
//! same cache (the studio then finds its files without fetching them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::hub_standin::{GOOD_TOKEN, StandIn, gguf_repo, hub_python};
use latent_studio::hub::cache::{RepoCache, RepoId};
use latent_studio::hub::config::HubConfig;
use latent_studio::hub::download::{FileRequest, Flow, Outcome, fetch_file};
use latent_studio::hub::{Hub, HubError};

const REPO: &str = "owner/tiny-GGUF";

fn hub(server: &StandIn, cache: &Path, extra: &[(&str, &str)]) -> Hub {
    let mut vars: Vec<(String, String)> = vec![
        ("HF_ENDPOINT".into(), server.endpoint.clone()),
        ("HF_HUB_CACHE".into(), cache.display().to_string()),
        ("HF_HOME".into(), cache.join("home").display().to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Hub::new(HubConfig::from_vars(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())))
}

fn fetch(hub: &Hub, repo: &str, path: &str) -> Result<Outcome, HubError> {
    let repo = RepoId::parse(repo).unwrap();
    fetch_file(hub, &FileRequest { repo: &repo, revision: "main", path, sha256: None }, &mut |_, _| Flow::Continue)
}

fn bytes_of(repo: &common::hub_standin::StandInRepo, path: &str) -> Vec<u8> {
    repo.files.iter().find(|f| f.path == path).unwrap().bytes.to_vec()
}

fn done(outcome: Outcome) -> PathBuf {
    match outcome {
        Outcome::Done(path) => path,
        other => panic!("not done: {other:?}"),
    }
}

#[test]
fn a_repo_is_described_and_a_file_lands_in_the_cache_layout() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&server, dir.path(), &[]);
    let info = hub.repo_info(&RepoId::parse(REPO).unwrap(), "main").unwrap();
    assert_eq!(info.commit, repo.commit);
    assert_eq!(info.license.as_deref(), Some("apache-2.0"));
    let q4 = info.files.iter().find(|f| f.path == "model-Q4_K_M.gguf").unwrap();
    assert_eq!((q4.size, q4.quant().as_deref()), (Some(3 << 20), Some("Q4_K_M")));
    assert_eq!(q4.sha256.as_deref(), Some(repo.files[2].sha256().as_str()));

    let path = done(fetch(&hub, REPO, "model-Q4_K_M.gguf").unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), bytes_of(&repo, "model-Q4_K_M.gguf"));
    let cache = RepoCache::new(dir.path(), &RepoId::parse(REPO).unwrap());
    assert_eq!(path, cache.root().join("snapshots").join(&repo.commit).join("model-Q4_K_M.gguf"));
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert_eq!(cache.commit_of("main").as_deref(), Some(repo.commit.as_str()));
    // A small git file is checked against its blob id, and found again with a HEAD only.
    done(fetch(&hub, REPO, "README.md").unwrap());
    server.clear_log();
    done(fetch(&hub, REPO, "model-Q4_K_M.gguf").unwrap());
    assert_eq!(server.requests(), vec![format!("HEAD /{REPO}/resolve/main/model-Q4_K_M.gguf")]);
}

#[test]
fn a_cut_connection_resumes_with_a_range_and_gives_the_exact_file() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    server.faults.lock().unwrap().cut_after = Some(((1 << 20) + 12345, 2));
    let dir = tempfile::tempdir().unwrap();
    let path = done(fetch(&hub(&server, dir.path(), &[]), REPO, "model-Q8_0.gguf").unwrap());
    assert_eq!(std::fs::read(path).unwrap(), bytes_of(&repo, "model-Q8_0.gguf"));
    let gets: Vec<String> = server.requests().into_iter().filter(|r| r.starts_with("GET /cdn/")).collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    // Each resume starts at the last byte that arrived.
    let cut = (1 << 20) + 12345;
    assert!(gets[1].ends_with(&format!("from {cut}")) && gets[2].ends_with(&format!("from {}", 2 * cut)), "{gets:?}");
}

#[test]
fn a_paused_download_resumes_in_a_new_client_from_its_partial_blob() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let id = RepoId::parse(REPO).unwrap();
    let request = FileRequest { repo: &id, revision: "main", path: "model-Q8_0.gguf", sha256: None };
    let mut seen = Vec::new();
    let outcome = fetch_file(&hub(&server, dir.path(), &[]), &request, &mut |done, total| {
        seen.push((done, total));
        if done >= 2 << 20 { Flow::Pause } else { Flow::Continue }
    })
    .unwrap();
    assert_eq!(outcome, Outcome::Paused);
    assert_eq!(seen, vec![(1 << 20, Some(5 << 20)), (2 << 20, Some(5 << 20))]);
    let cache = RepoCache::new(dir.path(), &id);
    let partial = cache.incomplete_blob(&repo.files[3].sha256());
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 2 << 20);
    assert!(cache.cached_file("main", "model-Q8_0.gguf").is_none(), "no half file where the model is expected");

    // "After a restart": a new client, same cache.
    server.clear_log();
    let path = done(fetch(&hub(&server, dir.path(), &[]), REPO, "model-Q8_0.gguf").unwrap());
    assert_eq!(std::fs::read(path).unwrap(), bytes_of(&repo, "model-Q8_0.gguf"));
    assert!(server.requests().iter().any(|r| r.starts_with("GET /cdn/") && r.ends_with("from 2097152")));
    assert!(!partial.exists());

    // Cancel deletes the partial blob.
    let mut cancel_after_first = |_: u64, _: Option<u64>| Flow::Cancel;
    let q4 = FileRequest { path: "model-Q4_K_M.gguf", ..request };
    assert_eq!(fetch_file(&hub(&server, dir.path(), &[]), &q4, &mut cancel_after_first).unwrap(), Outcome::Cancelled);
    assert!(!cache.incomplete_blob(&repo.files[2].sha256()).exists());
}

#[test]
fn a_server_ignoring_range_restarts_the_file() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    {
        let mut faults = server.faults.lock().unwrap();
        faults.ignore_range = true;
        faults.cut_after = Some((3 << 19, 1));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = done(fetch(&hub(&server, dir.path(), &[]), REPO, "model-Q4_K_M.gguf").unwrap());
    assert_eq!(std::fs::read(path).unwrap(), bytes_of(&repo, "model-Q4_K_M.gguf"));
}

#[test]
fn a_checksum_mismatch_is_refused_and_deleted() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    server.faults.lock().unwrap().corrupt = vec!["model-Q4_K_M.gguf".into(), "README.md".into()];
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&server, dir.path(), &[]);
    let error = fetch(&hub, REPO, "model-Q4_K_M.gguf").unwrap_err();
    assert!(matches!(error, HubError::Checksum { .. }), "{error}");
    assert!(error.to_string().contains("owner/tiny-GGUF/model-Q4_K_M.gguf did not match"), "{error}");
    let cache = RepoCache::new(dir.path(), &RepoId::parse(REPO).unwrap());
    assert!(cache.cached_file("main", "model-Q4_K_M.gguf").is_none());
    let blobs: Vec<_> = std::fs::read_dir(cache.root().join("blobs")).unwrap().collect();
    assert!(blobs.is_empty(), "nothing kept: {blobs:?}");
    // A git file is checked against its blob id (sha1) too.
    assert!(matches!(fetch(&hub, REPO, "README.md").unwrap_err(), HubError::Checksum { .. }));
}

#[test]
fn gated_and_missing_repos_and_files_say_so() {
    let mut gated = gguf_repo("owner/gated");
    gated.gated = true;
    let server = StandIn::start(vec![gguf_repo(REPO), gated.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let anonymous = hub(&server, dir.path(), &[]);
    let error = fetch(&anonymous, "owner/gated", "model-Q4_K_M.gguf").unwrap_err();
    assert!(matches!(error, HubError::Gated { .. }), "{error}");
    assert!(matches!(fetch(&anonymous, "owner/missing", "x.gguf").unwrap_err(), HubError::RepoNotFound { .. }));
    assert!(matches!(
        anonymous.repo_info(&RepoId::parse("owner/missing").unwrap(), "main").unwrap_err(),
        HubError::RepoNotFound { .. }
    ));
    let error = fetch(&anonymous, REPO, "nope.gguf").unwrap_err();
    assert!(matches!(error, HubError::EntryNotFound { .. }) && error.to_string().contains("nope.gguf"), "{error}");
    let error = anonymous.repo_info(&RepoId::parse(REPO).unwrap(), "v9").unwrap_err();
    assert!(matches!(error, HubError::RevisionNotFound { .. }), "{error}");

    // With the token: downloaded; the token goes to the Hub, never to the CDN, and is never printed.
    server.clear_log();
    let with_token = hub(&server, dir.path(), &[("HF_TOKEN", GOOD_TOKEN)]);
    done(fetch(&with_token, "owner/gated", "model-Q4_K_M.gguf").unwrap());
    let log = server.requests();
    assert!(log.iter().any(|r| r.starts_with("HEAD /owner/gated/") && r.ends_with(" auth")), "{log:?}");
    assert!(log.iter().filter(|r| r.starts_with("GET /cdn/")).all(|r| !r.ends_with(" auth")), "{log:?}");
    assert!(!format!("{with_token:?}").contains(GOOD_TOKEN));
}

#[test]
fn offline_and_unreachable_answer_from_the_cache_or_say_why() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    let dir = tempfile::tempdir().unwrap();
    done(fetch(&hub(&server, dir.path(), &[]), REPO, "model-Q4_K_M.gguf").unwrap());
    server.clear_log();
    let offline = hub(&server, dir.path(), &[("HF_HUB_OFFLINE", "1")]);
    done(fetch(&offline, REPO, "model-Q4_K_M.gguf").unwrap());
    let error = fetch(&offline, REPO, "model-Q8_0.gguf").unwrap_err();
    assert!(error.to_string().contains("offline (HF_HUB_OFFLINE is set)"), "{error}");
    assert!(offline.repo_info(&RepoId::parse(REPO).unwrap(), "main").is_err());
    assert!(server.requests().is_empty(), "offline sends nothing: {:?}", server.requests());

    // Nobody listening: the cached file is used, an uncached one names the server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let vars = [("HF_ENDPOINT", dead.clone()), ("HF_HUB_CACHE", dir.path().display().to_string())];
    let unreachable = Hub::new(HubConfig::from_vars(&|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.into())));
    done(fetch(&unreachable, REPO, "model-Q4_K_M.gguf").unwrap());
    let error = fetch(&unreachable, REPO, "model-Q8_0.gguf").unwrap_err();
    assert!(matches!(error, HubError::Connect { .. }) && error.to_string().contains(&dead), "{error}");
}

#[test]
fn files_huggingface_hub_downloaded_are_not_fetched_again_and_ours_are_its() {
    let repo = gguf_repo(REPO);
    let server = StandIn::start(vec![repo.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().display().to_string();
    let env =
        [("HF_ENDPOINT", server.endpoint.as_str()), ("HF_HUB_CACHE", cache.as_str()), ("HF_HOME", cache.as_str())];
    // Python downloads one file from the stand-in (this also checks the stand-in speaks the Hub's protocol).
    let theirs = hub_python(
        &format!("from huggingface_hub import hf_hub_download as d\nprint(d('{REPO}', 'model-Q4_K_M.gguf'))"),
        &env,
    );
    server.clear_log();
    let hub = hub(&server, dir.path(), &[]);
    let ours = done(fetch(&hub, REPO, "model-Q4_K_M.gguf").unwrap());
    assert_eq!(ours, Path::new(theirs.trim()));
    assert!(server.requests().iter().all(|r| !r.starts_with("GET")), "fetched again: {:?}", server.requests());
    // We download another; Python, offline, finds it.
    let ours = done(fetch(&hub, REPO, "model-Q8_0.gguf").unwrap());
    let env = [("HF_HUB_CACHE", cache.as_str()), ("HF_HOME", cache.as_str()), ("HF_HUB_OFFLINE", "1")];
    let found = hub_python(
        &format!("from huggingface_hub import hf_hub_download as d\nprint(d('{REPO}', 'model-Q8_0.gguf'))"),
        &env,
    );
    assert_eq!(Path::new(found.trim()), ours);
}
