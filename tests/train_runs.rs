//! One training driver: a GAN run started from the studio (the worker's
//! `TrainGan`, what the Train view sends) ends exactly as `latent-studio
//! train gan` does: the same files in its folder (checkpoint, progress log
//! and grids, the exported model) and the same weights.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use latent_studio::gan::network::GanConfig;
use latent_studio::gan::train::TrainGanSpec;
use latent_studio::io::datasets::DatasetName;
use latent_studio::train::log::{LogFollower, LogLine};
use latent_studio::worker::train_plan::{RunFolder, TrainPlan, TrainRequest};
use latent_studio::worker::{WorkerEvent, WorkerHandle, WorkerRequest};

use common::{ok, s};

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The log's lines with the wall-clock seconds left out.
fn log_kinds(run: &Path) -> Vec<String> {
    let lines = LogFollower::new(&run.join("progress")).poll().unwrap();
    lines
        .into_iter()
        .map(|l| match l {
            LogLine::Epoch { mut report } => {
                report.seconds = 0.0;
                format!("{:?}", LogLine::Epoch { report })
            }
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_studio_gan_run_ends_as_a_command_line_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::write_emoji_folder(&data);
    let cli = dir.path().join("cli-run");
    ok(&[
        "train",
        "gan",
        "--dataset",
        "emoji",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--out",
        s(&cli),
        "--data-dir",
        s(&data),
    ]);

    let runs = dir.path().join("runs");
    let config = GanConfig { image_size: 32, channels: 3, latent_dim: 64, base_channels: 64 };
    let spec = TrainGanSpec::dcgan(DatasetName::Emoji, config, 2, 3);
    let mut w = WorkerHandle::spawn_with_models(dir.path().into(), vec![], Arc::new(|| {})).unwrap();
    let request = TrainRequest {
        plan: TrainPlan::Gan(spec),
        data_dir: data.clone(),
        folder: RunFolder::Fresh(runs.clone()),
        limit: None,
        until: None,
    };
    let job = w.submit(WorkerRequest::Train(Box::new(request)));
    let end = loop {
        let e = w.recv_timeout(Duration::from_secs(120)).expect("the run went quiet");
        if e.job() == job && e.is_terminal() {
            break e;
        }
    };
    assert!(matches!(end, WorkerEvent::TrainingDone { epochs: 2, .. }), "{end:?}");
    let gui = runs.join("gan-run-1");

    assert_eq!(files(&gui), files(&cli), "the same files");
    for file in ["model.safetensors", "checkpoint/weights.safetensors", "progress/epoch-002.png", "samples.png"] {
        assert!(std::fs::read(gui.join(file)).unwrap() == std::fs::read(cli.join(file)).unwrap(), "{file} differs");
    }
    assert_eq!(log_kinds(&gui), log_kinds(&cli), "the same log");
    assert!(matches!(log_kinds(&gui).last().map(String::as_str), Some(l) if l.starts_with("Done")));
    // The card names the command that makes the same run.
    let card = std::fs::read_to_string(gui.join("README.md")).unwrap();
    assert!(card.contains("latent-studio train gan --dataset emoji"), "{card}");
}
