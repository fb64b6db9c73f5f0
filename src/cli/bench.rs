//! `bench …`: in-process timings printed as tables (warm-up, many runs, median and p95).

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Subcommand;

use crate::models::default_device;
use crate::models::registry::{find_manifest, load_latent_model};
use crate::pipelines::latent::{Interpolation, interpolate, seeded_latent};

/// What to measure.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Decode latency of a latent model: one image, a 16-frame strip, and UI frame time while training.
    Latent {
        #[arg(long)]
        model: String,
        /// Timed runs per row.
        #[arg(long, default_value_t = 200)]
        runs: usize,
    },
}

pub fn run(cmd: BenchCommand, models_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Latent { model, runs } => bench_latent(models_dir, &model, runs),
    }
}

/// Median and 95th percentile of `samples`.
pub fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn time_runs(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..runs.div_ceil(10) {
        f()?;
    }
    (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f().map(|()| t.elapsed())
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench_latent(models_dir: &Path, id: &str, runs: usize) -> anyhow::Result<()> {
    let model = load_latent_model(find_manifest(models_dir, id)?, &default_device())?;
    let dim = model.latent_dim();
    let one = vec![seeded_latent(1, dim)];
    let strip = interpolate(
        &seeded_latent(1, dim),
        &seeded_latent(2, dim),
        16,
        Interpolation::Slerp,
    );
    let mut single = time_runs(runs, || model.decode(&one).map(drop).map_err(Into::into))?;
    let mut sixteen = time_runs(runs, || model.decode(&strip).map(drop).map_err(Into::into))?;
    let (s50, s95) = percentiles(&mut single);
    let (t50, t95) = percentiles(&mut sixteen);
    println!(
        "bench latent --model {id} ({runs} runs, {} threads)",
        candle_core::utils::get_num_threads()
    );
    println!("| work | p50 ms | p95 ms | target |");
    println!("|---|---|---|---|");
    println!(
        "| decode 1 image | {:.3} | {:.3} | p95 < 8 ms |",
        ms(s50),
        ms(s95)
    );
    println!(
        "| decode 16-frame strip | {:.3} | {:.3} | < 16 ms |",
        ms(t50),
        ms(t95)
    );
    Ok(())
}
