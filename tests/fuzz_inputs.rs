//! Every fuzz seed (`fuzz/seeds/TARGET`) and every input a fuzzer crashed on
//! (`fuzz/regressions/TARGET`, one file per crash, kept after the fix) run
//! through their target's body: a parser of outside input returns an error,
//! it never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::PathBuf;

use latent_studio::fuzzing::TARGETS;

#[test]
fn seeds_and_past_crashes_parse_or_fail_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, body) in TARGETS {
        for folder in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| body(&data));
                assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
                ran += 1;
            }
        }
    }
    assert!(ran >= TARGETS.len(), "every target has at least one seed ({ran} inputs)");
}

#[test]
fn every_fuzz_target_has_a_body_and_a_seed() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no target {name}");
        assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "no fuzz_targets/{name}.rs");
        let seeds = std::fs::read_dir(root.join("seeds").join(name)).map(|d| d.count()).unwrap_or(0);
        assert!(seeds > 0, "no seed for {name}");
    }
    let targets = manifest.matches("[[bin]]").count();
    assert_eq!(targets, TARGETS.len(), "fuzz/Cargo.toml and fuzzing::TARGETS list the same targets");
}
