//! The import directions of ARCHITECTURE.md, checked on the source: every
//! `crate::…` path and every outside crate a module's non-test code names
//! must be one its layer may use.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

/// The top-level modules each module may name (besides itself).
fn allowed(module: &str) -> &'static [&'static str] {
    const LOW: &[&str] = &["spec", "io", "nn", "train", "latent"];
    match module {
        "spec" => &[],
        "io" => &["spec"],
        // The Hub client is file and network I/O, below every family.
        "hub" => &["spec", "io"],
        // Remote servers' clients: HTTP and formats, with the Hub's bearer-token type.
        "remote" => &["spec", "io", "hub::config"],
        "nn" => &["spec", "io"],
        "train" => &["spec", "io", "nn"],
        "latent" => &["spec", "io", "nn", "train"],
        // Outputs found again from their own metadata: files and formats only.
        "history" => &["spec", "io"],
        "vae" | "gan" | "text" | "diffusion" => LOW,
        "library" => &["spec", "io", "hub", "nn", "train", "latent", "vae", "gan", "text", "diffusion"],
        // The fuzz targets also read what the settings keep of a paused training run.
        "fuzzing" => &[
            "spec",
            "io",
            "hub",
            "nn",
            "train",
            "latent",
            "vae",
            "gan",
            "text",
            "diffusion",
            "worker::train_plan",
            "remote",
            "serve::http",
            "serve::openai_api",
            "serve::a1111_api",
        ],
        "worker" => &[
            "spec",
            "io",
            "hub",
            "remote",
            "nn",
            "train",
            "latent",
            "vae",
            "gan",
            "text",
            "diffusion",
            "library",
            "history",
        ],
        // Views name plain data, file formats, latent arithmetic, the worker's protocol types and
        // the Hub's plain data (repo ids, descriptions, the catalogue, the cache listing), never its client.
        "ui" => &[
            "spec",
            "io",
            "latent::interpolate",
            "history::entry",
            "worker",
            "hub::cache",
            "hub::catalogue",
            "hub::config",
            "hub::installed",
            "hub::pull",
            "hub::repo_info",
        ],
        "app" => &[
            "spec",
            "io",
            "hub",
            "remote",
            "nn",
            "train",
            "latent",
            "vae",
            "gan",
            "text",
            "diffusion",
            "library",
            "history",
            "worker",
            "ui",
        ],
        // The studio as a server: the model library and the families behind the two protocols.
        "serve" => &["spec", "io", "hub::config", "nn", "train", "latent", "text", "diffusion", "library", "history"],
        // The CLI reaches the app only through its public entry points.
        "cli" => &[
            "spec",
            "io",
            "hub",
            "nn",
            "train",
            "latent",
            "vae",
            "gan",
            "text",
            "diffusion",
            "library",
            "history",
            "worker",
            "remote",
            "serve",
            "app::frame_bench",
        ],
        _ => &[],
    }
}

/// Outside crates a module may not name.
fn forbidden_crates(module: &str) -> &'static [&'static str] {
    match module {
        "ui" => &["candle_core", "candle_nn", "candle_transformers", "latent_kernels"],
        "spec" | "io" | "hub" | "remote" | "nn" | "train" | "latent" | "vae" | "gan" | "text" | "diffusion"
        | "library" | "history" | "fuzzing" => {
            &["egui", "eframe", "egui_plot", "egui_extras", "crossbeam_channel", "rfd"]
        }
        _ => &[],
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of `text` before its test module.
fn non_test_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
}

/// Every `crate::a::b` path named in `line`, as "a::b".
fn crate_paths(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(i, _)| !line[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'))
        .map(|(i, m)| {
            line[i + m.len()..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .trim_end_matches(':')
                .to_owned()
        })
        .collect()
}

#[test]
fn imports_only_point_down() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs");
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in non_test_lines(&text) {
            for path in crate_paths(line) {
                let ok = path.split("::").next() == Some(module)
                    || allowed(module).iter().any(|a| path == *a || path.starts_with(&format!("{a}::")));
                if !ok {
                    wrong.push(format!("{}:{}: {module} names crate::{path}", rel.display(), n + 1));
                }
            }
            for krate in forbidden_crates(module) {
                let named = line
                    .match_indices(&format!("{krate}::"))
                    .any(|(i, _)| !line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'));
                if named {
                    wrong.push(format!("{}:{}: {module} names {krate}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports against ARCHITECTURE.md's directions:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_paths() {
    assert_eq!(crate_paths("use crate::ui::commands::{A, B};"), ["ui::commands"]);
    assert_eq!(
        crate_paths("x(latent_studio::crate::y, crate::io::png::read(crate::spec::X))"),
        ["io::png::read", "spec::X"]
    );
}
