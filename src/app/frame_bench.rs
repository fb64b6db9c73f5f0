//! The UI's per-frame CPU time while a VAE trains in the background and the
//! user drags a latent slider: the real `StudioApp` runs headless in an egui
//! context (layout + tessellation, everything but the GPU submit).
//! `latent-studio bench latent` prints the result.

use std::path::Path;
use std::time::{Duration, Instant};

use super::StudioApp;
use super::settings::Settings;
use crate::io::datasets::DatasetName;
use crate::ui::commands::UiCommand;
use crate::ui::jobs::Purpose;
use crate::vae::network::VaeConfig;
use crate::vae::train::TrainVaeSpec;
use crate::worker::WorkerRequest;
use crate::worker::train_plan::{RunFolder, TrainPlan, TrainRequest};

/// Frame times in milliseconds, (p50, p99).
pub struct FrameTimes {
    /// Frames timed.
    pub frames: usize,
    /// CPU time of the UI thread per frame; `None` where the OS has no per-thread clock.
    pub cpu: Option<(f64, f64)>,
    /// Wall time per frame.
    pub wall: (f64, f64),
    /// The training job's state at the end, for the log.
    pub training: String,
}

/// Runs `frames` UI frames at ~60 Hz while a VAE trains on MNIST from
/// `data_dir`; `None` when that data set is not there.
pub fn frame_times_during_training(
    models_dir: &Path,
    model: &str,
    frames: usize,
    data_dir: &Path,
) -> anyhow::Result<Option<FrameTimes>> {
    if !data_dir.join("mnist").is_dir() {
        return Ok(None);
    }
    let ctx = egui::Context::default();
    let settings = Settings { last_model: Some(model.to_owned()), ..Settings::default() };
    let mut app = StudioApp::with_settings(&ctx, None, models_dir.to_owned(), settings)?;
    let spec = TrainVaeSpec {
        dataset: DatasetName::Mnist.into(),
        config: VaeConfig::mnist(2),
        epochs: 1000,
        batch_size: 64,
        lr: 1e-3,
        beta: 1.0,
        seed: 0,
    };
    let run_dir = std::env::temp_dir().join(format!("latent-studio-bench-{}", std::process::id()));
    let train = app.submit(
        WorkerRequest::Train(Box::new(TrainRequest {
            plan: TrainPlan::Vae(spec),
            data_dir: data_dir.to_owned(),
            folder: RunFolder::Exact(run_dir.clone()),
            limit: None,
            until: None,
        })),
        Purpose::Train,
        "train (benchmark)",
    );
    // Let the model load and the trainer start before timing.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(3) {
        let out = ctx.run_ui(input(), |ui| app.frame_ui(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        std::thread::sleep(Duration::from_millis(16));
    }
    let mut times = Vec::with_capacity(frames);
    let mut cpu_times = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = Instant::now();
        let cpu = thread_cpu_time();
        // A slider drag: a new latent (and a coalesced decode request) every frame.
        if let Some(z) = app.panel.latent.first_mut() {
            *z = 2.5 * (i as f32 * 0.05).sin();
            app.apply(UiCommand::DecodeCurrent);
        }
        timed_frame(&ctx, &mut app, (t, cpu), &mut times, &mut cpu_times);
    }
    let training = app.jobs().get(train).map(|j| format!("{:?}", j.state)).unwrap_or_default();
    app.apply(UiCommand::Cancel(train));
    let wall = p50_p99(&mut times);
    let cpu = (!cpu_times.is_empty()).then(|| p50_p99(&mut cpu_times));
    let _ = std::fs::remove_dir_all(run_dir);
    Ok(Some(FrameTimes { frames, cpu, wall, training }))
}

/// Runs `frames` UI frames at ~60 Hz on the Train view while it trains the
/// emoji DCGAN (from `data_dir`) as a user starts it: every batch's losses
/// and each epoch's samples arrive as events and are plotted. The run goes
/// to a temporary models folder, removed afterwards.
pub fn frame_times_in_train_view(data_dir: &Path, frames: usize) -> anyhow::Result<FrameTimes> {
    let models_dir = std::env::temp_dir().join(format!("latent-studio-bench-runs-{}", std::process::id()));
    std::fs::create_dir_all(&models_dir)?;
    let ctx = egui::Context::default();
    let settings = Settings { tab: crate::ui::commands::Tab::Train, ..Settings::default() };
    let mut app = StudioApp::with_settings(&ctx, None, models_dir.clone(), settings)?;
    app.train.family = crate::ui::train_panel::TrainFamily::Gan;
    (app.train.use_folder, app.train.dataset) = (false, DatasetName::Emoji);
    app.train.data_dir = data_dir.display().to_string();
    app.train.epochs = 1000;
    app.apply(UiCommand::StartTraining);
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(5) {
        let out = ctx.run_ui(input(), |ui| app.frame_ui(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        std::thread::sleep(Duration::from_millis(16));
    }
    let (mut times, mut cpu_times) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    for _ in 0..frames {
        timed_frame(&ctx, &mut app, (Instant::now(), thread_cpu_time()), &mut times, &mut cpu_times);
    }
    let run = &app.train.run;
    let training = format!("epoch {:?}, {} loss points plotted", run.position, run.curve("D").len());
    if let Some(job) = app.train.running {
        app.apply(UiCommand::Cancel(job));
    }
    let wall = p50_p99(&mut times);
    let cpu = (!cpu_times.is_empty()).then(|| p50_p99(&mut cpu_times));
    // Let the cancelled run stop before its folder goes.
    std::thread::sleep(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&models_dir);
    Ok(FrameTimes { frames, cpu, wall, training })
}

/// Runs `frames` UI frames at ~60 Hz on the Models view while `plan` is
/// pulled from the Hub `config` names (into its cache, emptied first and
/// again after each pull so the download keeps going), timing each frame.
pub fn frame_times_during_download(
    models_dir: &Path,
    config: crate::hub::config::HubConfig,
    plan: crate::hub::pull::PullPlan,
    frames: usize,
) -> anyhow::Result<FrameTimes> {
    let ctx = egui::Context::default();
    let settings = Settings { tab: crate::ui::commands::Tab::Models, ..Settings::default() };
    let mut app = StudioApp::with_settings(&ctx, None, models_dir.to_owned(), settings)?;
    let cache_dir = config.cache_dir.clone();
    app.use_hub(config);
    let mut pulls = 0;
    let mut times = Vec::with_capacity(frames);
    let mut cpu_times = Vec::with_capacity(frames);
    for _ in 0..frames {
        if !app.models_panel.downloads.iter().any(|r| r.is_active()) {
            let _ = crate::hub::installed::delete(&cache_dir, &plan.repo);
            app.apply(UiCommand::Download { plan: plan.clone(), branch: "main".into() });
            pulls += 1;
        }
        timed_frame(&ctx, &mut app, (Instant::now(), thread_cpu_time()), &mut times, &mut cpu_times);
    }
    let finished = app.models_panel.downloads.iter().filter(|r| !r.is_active()).count();
    let wall = p50_p99(&mut times);
    let cpu = (!cpu_times.is_empty()).then(|| p50_p99(&mut cpu_times));
    Ok(FrameTimes { frames, cpu, wall, training: format!("{pulls} pulls started, {finished} finished") })
}

/// The window the benchmarks draw into.
fn input() -> egui::RawInput {
    egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1200.0, 780.0))),
        ..Default::default()
    }
}

/// Draws and tessellates one frame begun at `start` (wall, CPU), records its
/// times, then sleeps out the rest of a 60 Hz frame.
fn timed_frame(
    ctx: &egui::Context,
    app: &mut StudioApp,
    start: (Instant, Option<Duration>),
    times: &mut Vec<Duration>,
    cpu_times: &mut Vec<Duration>,
) {
    let out = ctx.run_ui(input(), |ui| app.frame_ui(ui));
    let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
    times.push(start.0.elapsed());
    if let (Some(end), Some(cpu)) = (thread_cpu_time(), start.1) {
        cpu_times.push(end.saturating_sub(cpu));
    }
    std::thread::sleep(Duration::from_millis(16).saturating_sub(start.0.elapsed()));
}

fn p50_p99(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// CPU time the calling thread has used: unlike wall time, it leaves out the
/// moments the scheduler gave the core to another thread.
/// `None` where there is no per-thread clock (only Linux is wired up).
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
        }
    }
    None
}

/// Runs `frames` UI frames at ~60 Hz on the History view of `output_dir`
/// while the list scrolls by a mouse wheel (thumbnails arriving for the rows
/// that come into view), timing each frame.
pub fn frame_times_in_history(output_dir: &Path, frames: usize) -> anyhow::Result<FrameTimes> {
    let ctx = egui::Context::default();
    let settings =
        Settings { tab: crate::ui::commands::Tab::History, output_dir: output_dir.to_owned(), ..Settings::default() };
    let mut app = StudioApp::with_settings(&ctx, None, std::env::temp_dir(), settings)?;
    let warm = Instant::now();
    while app.history.entries.is_empty() && warm.elapsed() < Duration::from_secs(120) {
        let out = ctx.run_ui(input(), |ui| app.frame_ui(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        std::thread::sleep(Duration::from_millis(16));
    }
    let over_list = egui::pos2(600.0, 500.0);
    let (mut times, mut cpu_times) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
    for _ in 0..frames {
        let start = (Instant::now(), thread_cpu_time());
        let mut raw = input();
        raw.events = vec![
            egui::Event::PointerMoved(over_list),
            egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -40.0),
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Unknown,
                modifiers: egui::Modifiers::NONE,
            },
        ];
        let out = ctx.run_ui(raw, |ui| app.frame_ui(ui));
        let _ = ctx.tessellate(out.shapes, out.pixels_per_point);
        times.push(start.0.elapsed());
        if let (Some(end), Some(cpu)) = (thread_cpu_time(), start.1) {
            cpu_times.push(end.saturating_sub(cpu));
        }
        std::thread::sleep(Duration::from_millis(16).saturating_sub(start.0.elapsed()));
    }
    let training =
        format!("{} files listed, {} thumbnails loaded", app.history.entries.len(), app.history.thumbnails.len());
    let wall = p50_p99(&mut times);
    let cpu = (!cpu_times.is_empty()).then(|| p50_p99(&mut cpu_times));
    Ok(FrameTimes { frames, cpu, wall, training })
}
