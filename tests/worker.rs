//! The worker protocol on the CPU with tiny models: coalescing, cancel,
//! panic containment and clear errors for bad files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use image::RgbImage;
use latent_studio::io::manifest::ModelManifest;
use latent_studio::latent::model::{LatentModel, ModelError};
use latent_studio::text::llama::KvPrecision;
use latent_studio::worker::{JobId, SaveFormat, SaveTarget, WorkerEvent, WorkerHandle, WorkerRequest};

/// A model that takes its time or panics, to drive the worker's edge cases.
struct TestModel {
    manifest: ModelManifest,
    delay: Duration,
    panic: bool,
}

impl LatentModel for TestModel {
    fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }
    fn decode(&self, latents: &[Vec<f32>]) -> Result<Vec<RgbImage>, ModelError> {
        std::thread::sleep(self.delay);
        if self.panic {
            panic!("decoder exploded");
        }
        Ok(latents.iter().map(|z| RgbImage::from_pixel(2, 2, image::Rgb([(z[0] * 10.0) as u8, 0, 0]))).collect())
    }
}

fn test_model(id: &str, delay_ms: u64, panic: bool) -> Arc<dyn LatentModel> {
    let manifest: ModelManifest = serde_json::from_value(serde_json::json!({
        "id": id, "family": "vae", "name": id, "latent_dim": 1, "image_size": [2, 2], "channels": 3,
        "license": "test", "dataset": "none", "weights": "-", "config": {}
    }))
    .unwrap();
    Arc::new(TestModel { manifest, delay: Duration::from_millis(delay_ms), panic })
}

fn spawn(models: Vec<Arc<dyn LatentModel>>, dir: &std::path::Path) -> WorkerHandle {
    WorkerHandle::spawn_with_models(dir.to_owned(), models, Arc::new(|| {})).unwrap()
}

/// Collects events until every job in `jobs` has its terminal event.
fn finish(worker: &mut WorkerHandle, jobs: &[JobId]) -> Vec<WorkerEvent> {
    let mut events = Vec::new();
    let mut open: Vec<JobId> = jobs.to_vec();
    while !open.is_empty() {
        let e = worker.recv_timeout(Duration::from_secs(30)).expect("worker went quiet");
        if e.is_terminal() {
            open.retain(|j| *j != e.job());
        }
        events.push(e);
    }
    events
}

fn terminal(events: &[WorkerEvent], job: JobId) -> &WorkerEvent {
    events.iter().find(|e| e.job() == job && e.is_terminal()).expect("no terminal event")
}

fn decode(model: &str, z: f32, preview: bool) -> WorkerRequest {
    WorkerRequest::Decode { model: model.into(), latents: vec![vec![z]], preview: preview.then(|| "current".into()) }
}

#[test]
fn previews_are_coalesced_but_saves_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = spawn(vec![test_model("slow", 300, false), test_model("fast", 0, false)], dir.path());
    let busy = w.submit(decode("slow", 0.0, false));
    std::thread::sleep(Duration::from_millis(50)); // the slow job is running now
    let mut previews = Vec::new();
    let mut save = None;
    for i in 0..10 {
        previews.push(w.submit(decode("fast", i as f32, true)));
        if i == 4 {
            save = Some(w.submit(WorkerRequest::Save {
                model: "fast".into(),
                latents: vec![vec![1.0]],
                settings: Default::default(),
                format: SaveFormat::Png { columns: 1 },
                target: SaveTarget::Numbered { dir: dir.path().join("out"), stem: "x".into() },
                scale: 1,
            }));
        }
    }
    let save = save.unwrap();
    let mut all = previews.clone();
    all.extend([busy, save]);
    let events = finish(&mut w, &all);
    for job in &previews[..9] {
        assert!(matches!(terminal(&events, *job), WorkerEvent::Superseded { .. }), "{job:?} was not superseded");
    }
    let WorkerEvent::Decoded { images, .. } = terminal(&events, previews[9]) else {
        panic!("newest preview not decoded")
    };
    assert_eq!(images[0].get_pixel(0, 0).0[0], 90, "the newest latent was decoded");
    assert!(matches!(terminal(&events, save), WorkerEvent::Saved { .. }));
}

#[test]
fn cancel_drops_a_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = spawn(vec![test_model("slow", 300, false)], dir.path());
    let first = w.submit(decode("slow", 0.0, false));
    let second = w.submit(decode("slow", 1.0, false));
    w.cancel(second);
    let events = finish(&mut w, &[first, second]);
    assert!(matches!(terminal(&events, first), WorkerEvent::Decoded { .. }));
    assert!(matches!(terminal(&events, second), WorkerEvent::Cancelled { .. }));
}

#[test]
fn a_panicking_job_fails_and_the_worker_lives_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = spawn(vec![test_model("boom", 0, true), test_model("fine", 0, false)], dir.path());
    let bad = w.submit(decode("boom", 0.0, false));
    let good = w.submit(decode("fine", 0.0, false));
    let events = finish(&mut w, &[bad, good]);
    let WorkerEvent::Failed { error, .. } = terminal(&events, bad) else { panic!("panic not reported") };
    assert!(error.contains("decoder exploded"), "{error}");
    assert!(matches!(terminal(&events, good), WorkerEvent::Decoded { .. }));
}

#[test]
fn corrupt_weights_name_the_file_and_the_worker_survives() {
    let dir = tempfile::tempdir().unwrap();
    let good_dir = common::write_tiny_vae(dir.path(), "good");
    let bad_dir = common::write_tiny_vae(dir.path(), "bad");
    std::fs::write(bad_dir.join("model.safetensors"), b"\x10\x00\x00\x00garbage").unwrap();
    let mut w = WorkerHandle::spawn(dir.path().to_owned(), Arc::new(|| {})).unwrap();
    let bad = w.submit(WorkerRequest::LoadModel { model: "bad".into() });
    let good = w.submit(decode("good", 0.5, false));
    let events = finish(&mut w, &[bad, good]);
    let WorkerEvent::Failed { error, .. } = terminal(&events, bad) else { panic!("corrupt file loaded") };
    assert!(error.contains(&bad_dir.join("model.safetensors").display().to_string()), "{error}");
    // The tiny VAE has a 2-D latent: a 1-D latent is refused with a clear message.
    let WorkerEvent::Failed { error, .. } = terminal(&events, good) else { panic!("wrong latent size accepted") };
    assert!(error.contains("takes 2 latent values"), "{error}");
    let _ = good_dir;
}

#[test]
fn a_manifest_that_lies_about_shapes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = common::write_tiny_vae(dir.path(), "liar");
    let path = model_dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"hidden\": 16", "\"hidden\": 32");
    std::fs::write(&path, text).unwrap();
    let mut w = WorkerHandle::spawn(dir.path().to_owned(), Arc::new(|| {})).unwrap();
    let job = w.submit(WorkerRequest::LoadModel { model: "liar".into() });
    let events = finish(&mut w, &[job]);
    let WorkerEvent::Failed { error, .. } = terminal(&events, job) else { panic!("lying manifest loaded") };
    assert!(error.contains("model.safetensors") && error.contains("shape"), "{error}");
}

#[test]
fn unreadable_images_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    common::write_tiny_vae(dir.path(), "tiny");
    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, b"this is text").unwrap();
    let mut w = WorkerHandle::spawn(dir.path().to_owned(), Arc::new(|| {})).unwrap();
    let job = w.submit(WorkerRequest::Encode { model: "tiny".into(), image: not_image.clone() });
    let ok = w.submit(WorkerRequest::Decode { model: "tiny".into(), latents: vec![vec![0.0, 0.0]], preview: None });
    let events = finish(&mut w, &[job, ok]);
    let WorkerEvent::Failed { error, .. } = terminal(&events, job) else { panic!("text file encoded") };
    assert!(error.contains("notes.png"), "{error}");
    assert!(matches!(terminal(&events, ok), WorkerEvent::Decoded { .. }));
}

#[test]
fn saving_into_a_read_only_folder_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let mut perms = std::fs::metadata(&locked).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&locked, perms).unwrap();
    // A file in the way of the output folder fails for root too.
    let blocked = dir.path().join("file-not-folder");
    std::fs::write(&blocked, b"").unwrap();
    let mut w = spawn(vec![test_model("fast", 0, false)], dir.path());
    let targets = [locked.clone(), blocked.join("sub")];
    let root_ignores_permissions = std::fs::write(locked.join("probe"), b"").is_ok();
    let jobs: Vec<JobId> = targets
        .iter()
        .map(|d| {
            w.submit(WorkerRequest::Save {
                model: "fast".into(),
                latents: vec![vec![1.0]],
                settings: Default::default(),
                format: SaveFormat::Png { columns: 1 },
                target: SaveTarget::Numbered { dir: d.clone(), stem: "x".into() },
                scale: 1,
            })
        })
        .collect();
    let events = finish(&mut w, &jobs);
    for (job, target) in jobs.iter().zip(&targets) {
        if root_ignores_permissions && target == &locked {
            continue;
        }
        let WorkerEvent::Failed { error, .. } = terminal(&events, *job) else {
            panic!("save into {target:?} succeeded")
        };
        assert!(error.contains(&target.display().to_string()) || error.contains("file-not-folder"), "{error}");
    }
}

#[test]
fn training_without_data_fails_with_the_missing_file() {
    use latent_studio::io::datasets::DatasetName;
    use latent_studio::vae::network::VaeConfig;
    use latent_studio::vae::train::TrainVaeSpec;
    let dir = tempfile::tempdir().unwrap();
    let mut w = spawn(vec![test_model("fast", 0, false)], dir.path());
    let spec = TrainVaeSpec {
        dataset: DatasetName::Fashion.into(),
        config: VaeConfig::tiny(),
        epochs: 1,
        batch_size: 8,
        lr: 1e-3,
        beta: 1.0,
        seed: 0,
    };
    let data_dir = dir.path().join("no-data");
    let train = w.submit(vae_request(spec, &data_dir, &dir.path().join("run")));
    // The worker keeps serving while the trainer thread fails.
    let decode = w.submit(decode("fast", 1.0, false));
    let events = finish(&mut w, &[train, decode]);
    let WorkerEvent::Failed { error, .. } = terminal(&events, train) else { panic!("training without data succeeded") };
    assert!(error.contains(&data_dir.display().to_string()) && error.contains("fetch-data.sh"), "{error}");
    assert!(matches!(terminal(&events, decode), WorkerEvent::Decoded { .. }));
}

/// Writes a toy Fashion-MNIST-format data set of 8×8 images (two classes:
/// left half or top half lit) under `root/fashion/`.
fn write_toy_fashion(root: &std::path::Path, train: usize) {
    use std::io::Write;
    let dir = root.join("fashion");
    std::fs::create_dir_all(&dir).unwrap();
    let write_gz = |name: &str, bytes: Vec<u8>| {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap();
    };
    for (prefix, n) in [("train", train), ("t10k", 32)] {
        let mut images = vec![0, 0, 8, 3];
        images.extend((n as u32).to_be_bytes());
        images.extend(8u32.to_be_bytes());
        images.extend(8u32.to_be_bytes());
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((n as u32).to_be_bytes());
        for i in 0..n {
            for y in 0..8 {
                for x in 0..8 {
                    let on = if i % 2 == 0 { x < 4 } else { y < 4 };
                    images.push(if on { 230 } else { 20 });
                }
            }
            labels.push((i % 2) as u8);
        }
        write_gz(&format!("{prefix}-images-idx3-ubyte.gz"), images);
        write_gz(&format!("{prefix}-labels-idx1-ubyte.gz"), labels);
    }
}

fn toy_training(data_dir: &std::path::Path, run: &std::path::Path, epochs: usize) -> WorkerRequest {
    use latent_studio::io::datasets::DatasetName;
    use latent_studio::vae::network::VaeConfig;
    use latent_studio::vae::train::TrainVaeSpec;
    let spec = TrainVaeSpec {
        dataset: DatasetName::Fashion.into(),
        config: VaeConfig::tiny(),
        epochs,
        batch_size: 8,
        lr: 1e-2,
        beta: 1.0,
        seed: 0,
    };
    vae_request(spec, data_dir, run)
}

fn vae_request(
    spec: latent_studio::vae::train::TrainVaeSpec,
    data_dir: &std::path::Path,
    run: &std::path::Path,
) -> WorkerRequest {
    use latent_studio::worker::train_plan::{RunFolder, TrainPlan, TrainRequest};
    WorkerRequest::Train(Box::new(TrainRequest {
        plan: TrainPlan::Vae(spec),
        data_dir: data_dir.to_owned(),
        folder: RunFolder::Exact(run.to_owned()),
        limit: None,
        until: None,
    }))
}

#[test]
fn training_reports_epochs_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    write_toy_fashion(dir.path(), 64);
    let run = dir.path().join("run");
    let checkpoint = run.join("checkpoint");
    let mut w = spawn(vec![], dir.path());
    let job = w.submit(toy_training(dir.path(), &run, 2));
    let events = finish(&mut w, &[job]);
    let epochs: Vec<_> = events
        .iter()
        .filter_map(
            |e| if let WorkerEvent::TrainEpoch { summary, grid, .. } = e { Some((summary, grid)) } else { None },
        )
        .collect();
    assert_eq!(epochs.iter().map(|(r, _)| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
    let held_out =
        |r: &latent_studio::spec::train::EpochSummary| r.values.iter().find(|(n, _)| *n == "held-out").unwrap().1;
    assert!(epochs.iter().all(|(r, _)| held_out(r).is_finite() && r.seconds > 0.0), "{epochs:?}");
    assert!(epochs.iter().all(|(_, grid)| grid.is_some()), "a sample grid every epoch");
    assert!(events.iter().any(|e| matches!(e, WorkerEvent::TrainBatch { .. })));
    assert!(events.iter().any(|e| matches!(e, WorkerEvent::Progress { .. })));
    assert!(matches!(terminal(&events, job), WorkerEvent::TrainingDone { epochs: 2, .. }));
    assert!(checkpoint.join("state.json").is_file() && checkpoint.join("weights.safetensors").is_file());
    // A finished run ends as `train vae --out` does: with its model folder.
    let manifest = latent_studio::io::manifest::read_manifest(&run).unwrap();
    assert_eq!((manifest.id.as_str(), manifest.latent_dim), ("run", 2));
    assert!(run.join("model.safetensors").is_file() && run.join("README.md").is_file());
}

#[test]
fn cancelled_training_stops_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    write_toy_fashion(dir.path(), 4000);
    let run = dir.path().join("run");
    let checkpoint = run.join("checkpoint");
    let mut w = spawn(vec![], dir.path());
    let job = w.submit(toy_training(dir.path(), &run, 1000));
    let mut events = Vec::new();
    loop {
        let e = w.recv_timeout(Duration::from_secs(60)).expect("worker went quiet");
        let first_epoch_done = matches!(e, WorkerEvent::TrainEpoch { .. });
        let is_terminal = e.is_terminal();
        events.push(e);
        if first_epoch_done {
            w.cancel(job);
        }
        if is_terminal {
            break;
        }
    }
    assert!(matches!(events.last(), Some(WorkerEvent::Cancelled { .. })), "{:?}", events.last());
    let epochs = events.iter().filter(|e| matches!(e, WorkerEvent::TrainEpoch { .. })).count();
    assert!(epochs < 1000, "cancel did not stop training");
    let state = std::fs::read_to_string(checkpoint.join("state.json")).unwrap();
    assert!(state.contains("\"epoch\": 1"), "the first epoch's checkpoint is kept");
}

#[test]
fn jobs_left_behind_by_a_stopped_worker_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = spawn(vec![test_model("slow", 200, false)], dir.path());
    let running = w.submit(decode("slow", 0.0, false));
    w.submit(WorkerRequest::Shutdown);
    let stranded = w.submit(decode("slow", 1.0, false));
    let start = std::time::Instant::now();
    let mut events = Vec::new();
    while !events.iter().any(|e: &WorkerEvent| e.job() == stranded && e.is_terminal()) {
        assert!(start.elapsed() < Duration::from_secs(10), "the stranded job never ended: {events:?}");
        events.extend(w.poll());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(matches!(terminal(&events, running), WorkerEvent::Decoded { .. }));
    let WorkerEvent::Failed { error, .. } = terminal(&events, stranded) else { panic!("stranded job did not fail") };
    assert!(error.contains("worker stopped"), "{error}");
}

/// Image jobs run on the image thread: when the inference thread ends they
/// carry on, keep their cancel token and end exactly once; a request still
/// waiting to be handed on fails instead of hanging.
#[test]
fn image_jobs_outlive_a_stopped_inference_thread() {
    use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
    use latent_studio::spec::image::ImageRequest;
    use latent_studio::worker::{ImageJob, ImageModelRef};

    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("sd");
    write_random_model(&sd, &RandomModel::tiny(1)).unwrap();
    let mut w = spawn(vec![test_model("fast", 0, false)], dir.path());
    let image_job = |steps| {
        let request = ImageRequest { steps, width: 32, height: 32, guidance: 3.0, ..ImageRequest::new("sun", 1) };
        WorkerRequest::GenerateImage(Box::new(ImageJob {
            model: ImageModelRef::Dir(sd.clone()),
            request,
            init: None,
            noise: None,
            preview_every: 0,
            output_dir: dir.path().join("out"),
            lora_dirs: vec![],
            preview_decoder: None,
            embedding_dirs: vec![],
        }))
    };
    let image = w.submit(image_job(1000));
    let mut events = Vec::new();
    let until =
        |w: &mut WorkerHandle, events: &mut Vec<WorkerEvent>, what: &str, done: &dyn Fn(&WorkerEvent) -> bool| {
            let start = std::time::Instant::now();
            while !events.iter().any(done) {
                assert!(start.elapsed() < Duration::from_secs(60), "{what}: {events:?}");
                events.extend(w.poll());
                std::thread::sleep(Duration::from_millis(10));
            }
        };
    until(
        &mut w,
        &mut events,
        "the image job never ran",
        &|e| matches!(e, WorkerEvent::Progress { job, step, .. } if *job == image && *step >= 1),
    );
    w.submit(WorkerRequest::Shutdown);
    let stranded = w.submit(image_job(2));
    until(&mut w, &mut events, "the stranded request never ended", &|e| e.job() == stranded && e.is_terminal());
    let WorkerEvent::Failed { error, .. } = terminal(&events, stranded) else { panic!("{events:?}") };
    assert!(error.contains("worker stopped"), "{error}");
    assert!(
        !events.iter().any(|e| e.job() == image && e.is_terminal()),
        "the image job ended with the inference thread"
    );
    w.cancel(image);
    until(&mut w, &mut events, "the image job ignored its cancel", &|e| e.job() == image && e.is_terminal());
    std::thread::sleep(Duration::from_millis(200));
    events.extend(w.poll());
    assert!(matches!(terminal(&events, image), WorkerEvent::Cancelled { .. }), "{events:?}");
    assert_eq!(events.iter().filter(|e| e.job() == image && e.is_terminal()).count(), 1, "{events:?}");
}

mod text_generation {
    use super::*;
    use latent_studio::text::generate::{GenerateSpec, StopReason};
    use latent_studio::text::sampling::SamplingParams;
    use latent_studio::worker::TextModelRef;

    fn generate_request(path: &std::path::Path, max_new_tokens: usize) -> WorkerRequest {
        let spec = GenerateSpec {
            prompt: "ab".into(),
            chat: false,
            system: String::new(),
            history: Vec::new(),
            max_new_tokens,
            sampling: SamplingParams { seed: 3, ..Default::default() },
            stop_strings: vec![],
        };
        WorkerRequest::Generate { model: TextModelRef::File(path.to_owned()), spec, kv_cache: KvPrecision::F32 }
    }

    #[test]
    fn tokens_stream_and_add_up_to_the_result() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        common::write_tiny_llama_gguf(&path, 256, "llama");
        let mut worker = spawn(vec![], dir.path());
        let job = worker.submit(generate_request(&path, 12));
        let events = finish(&mut worker, &[job]);
        let mut streamed = String::new();
        let mut tokens = 0;
        for e in &events {
            if let WorkerEvent::TextTokens { token, text, .. } = e {
                streamed.push_str(text);
                tokens += token.is_some() as usize;
            }
        }
        assert!(events.iter().any(|e| matches!(e, WorkerEvent::TextStarted { prompt, .. } if prompt.len() == 1)));
        let Some(WorkerEvent::TextDone { generated, .. }) = events.last() else { panic!("{events:?}") };
        assert_eq!((generated.ids.len(), tokens), (12, 12));
        assert_eq!(generated.text, streamed);
    }

    #[test]
    fn cancel_stops_generation_and_keeps_the_partial_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        common::write_tiny_llama_gguf(&path, 4096, "llama");
        let mut worker = spawn(vec![], dir.path());
        let job = worker.submit(generate_request(&path, 1_000_000));
        loop {
            let e = worker.recv_timeout(Duration::from_secs(30)).expect("no tokens");
            if matches!(e, WorkerEvent::TextTokens { .. }) {
                break;
            }
        }
        worker.cancel(job);
        let events = finish(&mut worker, &[job]);
        let Some(WorkerEvent::TextDone { generated, .. }) = events.last() else { panic!("{events:?}") };
        assert_eq!(generated.stop, StopReason::Cancelled);
        assert!(!generated.ids.is_empty() && generated.ids.len() < 4000);
    }

    #[test]
    fn a_broken_model_file_fails_the_job_and_the_worker_lives_on() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.gguf");
        std::fs::write(&bad, "GGUF but not really").unwrap();
        let mut worker = spawn(vec![test_model("m", 0, false)], dir.path());
        let job = worker.submit(generate_request(&bad, 4));
        let events = finish(&mut worker, &[job]);
        let Some(WorkerEvent::Failed { error, .. }) = events.last() else { panic!("{events:?}") };
        assert!(error.contains("broken.gguf"), "{error}");
        let decode =
            worker.submit(WorkerRequest::Decode { model: "m".into(), latents: vec![vec![0.5]], preview: None });
        let events = finish(&mut worker, &[decode]);
        assert!(matches!(events.last(), Some(WorkerEvent::Decoded { .. })), "{events:?}");
    }
}

#[test]
fn saved_text_goes_to_a_new_numbered_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut worker = spawn(vec![], dir.path());
    let target = || SaveTarget::Numbered { dir: dir.path().to_owned(), stem: "text".into() };
    let a = worker.submit(WorkerRequest::SaveText { contents: "---\nseed: 1\n---\nfirst\n".into(), target: target() });
    let b = worker.submit(WorkerRequest::SaveText { contents: "second\n".into(), target: target() });
    let events = finish(&mut worker, &[a, b]);
    let paths: Vec<_> = events
        .iter()
        .filter_map(|e| if let WorkerEvent::Saved { path, .. } = e { Some(path.clone()) } else { None })
        .collect();
    assert_eq!(paths.len(), 2, "{events:?}");
    assert_ne!(paths[0], paths[1], "never overwritten");
    assert!(std::fs::read_to_string(&paths[0]).unwrap().ends_with("first\n"));
    assert_eq!(paths[1].extension().unwrap(), "txt");
}

/// A pad render with a tiny decoder (a Stable Diffusion model's) shows a
/// one-step preview first, then the full render; the preview is not the final image.
#[test]
fn a_pad_render_with_a_tiny_decoder_previews_first() {
    use latent_studio::diffusion::random_weights::{RandomModel, write_random_model};
    use latent_studio::diffusion::tiny_decoder::TinyDecoder;
    use latent_studio::spec::image::ImageRequest;
    use latent_studio::spec::latent_control::{LatentRecipe, PadRecipe};
    use latent_studio::worker::{ImageModelRef, PadJob};

    let dir = tempfile::tempdir().unwrap();
    let (sd, taesd) = (dir.path().join("sd"), dir.path().join("taesd.safetensors"));
    write_random_model(&sd, &RandomModel::tiny(1)).unwrap();
    TinyDecoder::write_random(&taesd, 2).unwrap();
    let mut w = spawn(vec![test_model("fast", 0, false)], dir.path());
    let pad = PadRecipe::corners(["a cat".into(), "a dog".into(), "sun".into(), "moon".into()].map(|p: String| (p, 3)));
    let job = w.submit(WorkerRequest::RenderPad(Box::new(PadJob {
        model: ImageModelRef::Dir(sd.clone()),
        base: ImageRequest { steps: 4, width: 32, height: 32, guidance: 3.0, ..ImageRequest::new("", 0) },
        latent: LatentRecipe { pad: Some(pad), ..LatentRecipe::default() },
        output_dir: None,
        preview_decoder: Some(taesd),
    })));
    let events = finish(&mut w, &[job]);
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.job() == job)
        .filter_map(|e| match e {
            WorkerEvent::PadPreview { .. } => Some("preview"),
            WorkerEvent::PadRendered { .. } => Some("rendered"),
            WorkerEvent::Failed { error, .. } => panic!("{error}"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["preview", "rendered"]);
}
