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

/// Runs `request` on a fresh worker; returns the events of the job, the terminal one last.
fn run_in_studio(request: TrainRequest, stop_after_epoch: Option<usize>) -> Vec<WorkerEvent> {
    let dir = tempfile::tempdir().unwrap();
    let mut w = WorkerHandle::spawn_with_models(dir.path().into(), vec![], Arc::new(|| {})).unwrap();
    let job = w.submit(WorkerRequest::Train(Box::new(request)));
    let mut events = Vec::new();
    loop {
        let e = w.recv_timeout(Duration::from_secs(300)).expect("the run went quiet");
        if e.job() != job {
            continue;
        }
        if let WorkerEvent::TrainEpoch { summary, .. } = &e
            && Some(summary.epoch) == stop_after_epoch
        {
            w.cancel(job); // what Pause does
        }
        let end = e.is_terminal();
        events.push(e);
        if end {
            return events;
        }
    }
}

fn same_bytes(a: &Path, b: &Path, files: &[&str]) {
    for file in files {
        let (x, y) = (std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap());
        assert!(x == y, "{file} differs between {} and {}", a.display(), b.display());
    }
}

fn folder_vae(folder: &Path, epochs: usize) -> TrainPlan {
    use latent_studio::io::datasets::DataSource;
    use latent_studio::io::image_folder::{Fit, FolderSpec};
    use latent_studio::vae::network::VaeConfig;
    use latent_studio::vae::train::TrainVaeSpec;
    let source = FolderSpec { folder: folder.to_owned(), side: 16, channels: 3, fit: Fit::Crop, flip: false };
    let config = VaeConfig { image_size: 16, channels: 3, latent_dim: 2, hidden: 16, base_channels: 4 };
    let spec = TrainVaeSpec {
        dataset: DataSource::Folder(source),
        config,
        epochs,
        batch_size: 4,
        lr: 1e-3,
        beta: 1.0,
        seed: 5,
    };
    TrainPlan::Vae(spec)
}

fn request(plan: TrainPlan, folder: RunFolder) -> TrainRequest {
    TrainRequest { plan, data_dir: "unused".into(), folder, limit: None, until: None }
}

/// Pause (a cancel that keeps the run) after the first epoch, then Resume:
/// the checkpoint and the model are bit-identical to an uninterrupted run.
/// "Export now" on a paused run writes the model from its last checkpoint.
#[test]
fn a_paused_studio_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    common::image_folder::mixed_folder(&data);
    let whole = dir.path().join("whole");
    let events = run_in_studio(request(folder_vae(&data, 3), RunFolder::Exact(whole.clone())), None);
    assert!(matches!(events.last(), Some(WorkerEvent::TrainingDone { epochs: 3, .. })), "{:?}", events.last());

    let paused = dir.path().join("paused");
    let events = run_in_studio(request(folder_vae(&data, 3), RunFolder::Exact(paused.clone())), Some(1));
    assert!(matches!(events.last(), Some(WorkerEvent::Cancelled { .. })), "{:?}", events.last());
    assert!(!paused.join("manifest.json").exists(), "not exported yet");
    let events = run_in_studio(request(folder_vae(&data, 3), RunFolder::Resume(paused.clone())), None);
    let stage = events.iter().find_map(|e| match e {
        WorkerEvent::TrainStage { done, planned, .. } => Some((*done, *planned)),
        _ => None,
    });
    assert!(matches!(stage, Some((d, 3)) if d >= 1), "resumed after the first epoch: {stage:?}");
    assert!(matches!(events.last(), Some(WorkerEvent::TrainingDone { epochs: 3, .. })), "{:?}", events.last());
    same_bytes(
        &whole,
        &paused,
        &["checkpoint/weights.safetensors", "checkpoint/optimizer.safetensors", "model.safetensors"],
    );

    // Export now: a paused run becomes a model at the epochs it has.
    let early = dir.path().join("early");
    run_in_studio(request(folder_vae(&data, 3), RunFolder::Exact(early.clone())), Some(1));
    let finish = TrainRequest { until: Some(0), ..request(folder_vae(&data, 3), RunFolder::Resume(early.clone())) };
    let events = run_in_studio(finish, None);
    assert!(matches!(events.last(), Some(WorkerEvent::TrainingDone { .. })), "{:?}", events.last());
    assert!(early.join("manifest.json").is_file() && early.join("model.safetensors").is_file());
    // A paused run whose folder is gone says so.
    let gone = request(folder_vae(&data, 3), RunFolder::Resume(dir.path().join("deleted")));
    let events = run_in_studio(gone, None);
    assert!(
        matches!(events.last(), Some(WorkerEvent::Failed { error, .. }) if error.contains("is gone")),
        "{events:?}"
    );
}

/// The VAE, the character GPT and the latent diffusion model started from
/// the studio (the requests the Train view sends) write the same
/// checkpoints and models as the same `latent-studio train …` commands.
#[test]
fn studio_runs_of_every_family_match_the_command_line() {
    use latent_studio::diffusion::stages::{DiffusionSettings, DiffusionStart};
    use latent_studio::io::datasets::DataSource;
    use latent_studio::io::image_folder::{Fit, FolderSpec};
    use latent_studio::io::text_corpus::TextSource;
    use latent_studio::text::gpt::GptConfig;
    use latent_studio::text::train::TrainTextSpec;
    use latent_studio::worker::train_plan::DiffusionPlan;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    common::image_folder::mixed_folder(&data);
    let folder = data.to_str().unwrap();

    let (gui, cli) = (dir.path().join("gui-vae"), dir.path().join("cli-vae"));
    run_in_studio(request(folder_vae(&data, 2), RunFolder::Exact(gui.clone())), None);
    let flags = ["--latent-dim", "2", "--hidden", "16", "--base-channels", "4", "--batch-size", "4", "--seed", "5"];
    let mut args = vec!["train", "vae", "--data", folder, "--side", "16", "--epochs", "2", "--out", s(&cli)];
    args.extend(flags);
    ok(&args);
    same_bytes(&gui, &cli, &["checkpoint/weights.safetensors", "model.safetensors"]);

    let text = dir.path().join("verse.txt");
    std::fs::write(&text, "the cat sat on the mat and the dog sat on the log\n".repeat(40)).unwrap();
    let (gui, cli) = (dir.path().join("gui-gpt"), dir.path().join("cli-gpt"));
    let spec = TrainTextSpec {
        corpus: TextSource::Files(text.clone()),
        config: GptConfig { vocab: 0, context: 16, layers: 1, heads: 2, width: 16 },
        steps: 6,
        batch_size: 4,
        lr: 2e-3,
        eval_every: 3,
        eval_windows: 4,
        seed: 2,
    };
    let events = run_in_studio(request(TrainPlan::Text(spec), RunFolder::Exact(gui.clone())), None);
    let samples: Vec<&String> = events
        .iter()
        .filter_map(|e| if let WorkerEvent::TrainEpoch { text, .. } = e { text.as_ref() } else { None })
        .collect();
    assert_eq!(samples.len(), 2, "a text sample after each evaluation");
    assert!(samples.iter().all(|t| t.chars().count() > 100), "{samples:?}");
    let flags = ["--context", "16", "--layers", "1", "--heads", "2", "--width", "16", "--batch-size", "4"];
    let mut args = vec!["train", "text", "--data", s(&text), "--steps", "6", "--eval-every", "3", "--out", s(&cli)];
    args.extend(flags);
    args.extend(["--eval-windows", "4", "--seed", "2"]);
    ok(&args);
    same_bytes(&gui, &cli, &["checkpoint/weights.safetensors", "model.safetensors"]);

    let (gui, cli) = (dir.path().join("gui-ldm"), dir.path().join("cli-ldm"));
    let source = FolderSpec { folder: data.clone(), side: 16, channels: 3, fit: Fit::Crop, flip: false };
    let plan = DiffusionPlan {
        source: DataSource::Folder(source),
        autoencoder_epochs: 1,
        autoencoder_channels: [8, 8, 8],
        start: DiffusionStart::New { merges: 50, max_len: 8, width: 32 },
        settings: DiffusionSettings { epochs: 1, batch_size: 8, lr: 3e-4, ema: None, seed: 4, sample_every: 1 },
    };
    run_in_studio(request(TrainPlan::Diffusion(plan), RunFolder::Exact(gui.clone())), None);
    let shape = ["--data", folder, "--side", "16", "--epochs", "1", "--seed", "4", "--out", s(&cli)];
    let mut args = vec!["train", "autoencoder", "--channels", "8,8,8", "--batch-size", "32"];
    args.extend(shape);
    ok(&args);
    let mut args = vec!["train", "diffusion", "--width", "32", "--merges", "50", "--max-len", "8", "--batch-size", "8"];
    args.extend(shape);
    args.extend(["--sample-every", "1"]);
    ok(&args);
    same_bytes(
        &gui,
        &cli,
        &[
            "vae/diffusion_pytorch_model.safetensors",
            "tokenizer/vocab.json",
            "checkpoint-diffusion/weights.safetensors",
            "unet/diffusion_pytorch_model.safetensors",
        ],
    );
}
