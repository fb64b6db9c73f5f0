//! The hub cache against Python's `huggingface_hub` (the real other side,
//! installed by `scripts/fetch-hub-python.sh`): a cache we write is one it
//! reads without a request, and a cache it writes is one we read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

mod common;

use common::hub_standin::hub_python;
use latent_studio::hub::cache::{RepoCache, RepoId};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF";
const FILES: [(&str, &str, &[u8]); 2] =
    [("smollm2-135m-instruct-q8_0.gguf", "e1", b"GGUF weights"), ("unet/config.json", "e2", b"{\"in_channels\": 4}")];

/// Runs `script` with the pinned `huggingface_hub`, offline; returns its standard output.
fn python(script: &str) -> String {
    hub_python(script, &[("HF_HUB_OFFLINE", "1")])
}

#[test]
fn huggingface_hub_finds_the_files_we_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = RepoCache::new(dir.path(), &RepoId::parse(REPO).unwrap());
    std::fs::create_dir_all(cache.root().join("blobs")).unwrap();
    for (path, etag, bytes) in FILES {
        std::fs::write(cache.blob(etag), bytes).unwrap();
        cache.link_snapshot(COMMIT, path, etag).unwrap();
    }
    cache.write_ref("main", COMMIT).unwrap();
    let script = format!(
        "from huggingface_hub import try_to_load_from_cache as find\n\
         for rev in ['main', '{COMMIT}']:\n\
         \x20   for path in ['{}', '{}', 'missing.json']:\n\
         \x20       print(find('{REPO}', path, cache_dir=r'{}', revision=rev))\n",
        FILES[0].0,
        FILES[1].0,
        dir.path().display()
    );
    let found: Vec<String> = python(&script).lines().map(str::to_owned).collect();
    let ours =
        |rev: &str, path: &str| cache.cached_file(rev, path).map_or("None".to_owned(), |p| p.display().to_string());
    let expected: Vec<String> = ["main", COMMIT]
        .iter()
        .flat_map(|rev| [FILES[0].0, FILES[1].0, "missing.json"].map(|p| ours(rev, p)))
        .collect();
    assert_eq!(found, expected);
    assert_eq!(std::fs::read(Path::new(&found[1])).unwrap(), FILES[1].2);
}

#[test]
fn we_find_the_files_huggingface_hub_caches() {
    let dir = tempfile::tempdir().unwrap();
    // huggingface_hub's own steps after a download: the blob under its
    // etag, the snapshot link made by its `_create_symlink`, the ref.
    let mut script = format!(
        "import os\n\
         from huggingface_hub import file_download as fd\n\
         root = os.path.join(r'{}', fd.repo_folder_name(repo_id='{REPO}', repo_type='model'))\n\
         os.makedirs(os.path.join(root, 'blobs'), exist_ok=True)\n",
        dir.path().display()
    );
    for (path, etag, bytes) in FILES {
        script += &format!(
            "blob = os.path.join(root, 'blobs', '{etag}')\n\
             open(blob, 'wb').write(bytes({bytes:?}))\n\
             pointer = os.path.join(root, 'snapshots', '{COMMIT}', '{path}')\n\
             os.makedirs(os.path.dirname(pointer), exist_ok=True)\n\
             fd._create_symlink(blob, pointer, new_blob=False)\n"
        );
    }
    script += &format!("fd._cache_commit_hash_for_specific_revision(root, 'main', '{COMMIT}')\n");
    python(&script);
    let cache = RepoCache::new(dir.path(), &RepoId::parse(REPO).unwrap());
    for (path, _, bytes) in FILES {
        for rev in ["main", COMMIT] {
            let file = cache.cached_file(rev, path).unwrap_or_else(|| panic!("{path} at {rev} not found"));
            assert_eq!(std::fs::read(file).unwrap(), bytes);
        }
    }
    assert!(cache.cached_file("main", "missing.json").is_none());
}
