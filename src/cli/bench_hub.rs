//! `bench hub`: how fast `pull` fetches a file from the Hub `HF_ENDPOINT`
//! names (benches/hub_download_bench.py starts a stand-in on 127.0.0.1 and
//! times Python's `hf_hub_download` against the same server), and the UI's
//! frame time on the Models view while a download runs.

use std::path::Path;
use std::time::Instant;

use crate::hub::Hub;
use crate::hub::cache::RepoId;
use crate::hub::config::HubConfig;
use crate::hub::download::{Flow, Outcome};
use crate::hub::pull::{plan, pull};

/// Runs `bench hub`.
pub fn bench_hub(
    models_dir: &Path,
    repo: &str,
    file: &str,
    runs: usize,
    frames: usize,
    json: bool,
) -> anyhow::Result<()> {
    let repo = RepoId::parse(repo)?;
    let cache = tempfile_dir()?;
    let config = HubConfig { cache_dir: cache.clone(), ..HubConfig::from_env() };
    let hub = Hub::new(config.clone());
    let plan = plan(&hub, &repo, "main", &[file.to_owned()])?;
    let bytes = plan.total_bytes();
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&cache);
        let start = Instant::now();
        let outcome = pull(&hub, &plan, "main", &mut |_| Flow::Continue)?;
        let seconds = start.elapsed().as_secs_f64();
        anyhow::ensure!(matches!(outcome, Outcome::Done(_)), "the pull stopped: {outcome:?}");
        rates.push(bytes as f64 / seconds / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let ui = if frames > 0 {
        Some(crate::app::frame_bench::frame_times_during_download(models_dir, config, plan, frames)?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&cache);
    if json {
        let ui = ui.as_ref().map(
            |t| serde_json::json!({"frames": t.frames, "cpu_ms": t.cpu, "wall_ms": t.wall, "downloads": t.training}),
        );
        println!("{}", serde_json::json!({"bytes": bytes, "mb_per_s": rates, "median_mb_per_s": median, "ui": ui}));
        return Ok(());
    }
    println!("| measurement | median | all runs |");
    println!("|---|---|---|");
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!("| pull {} ({:.0} MB), MB/s | {median:.0} | {} |", file, bytes as f64 / 1e6, all.join(", "));
    if let Some(t) = ui {
        if let Some((p50, p99)) = t.cpu {
            println!(
                "| UI frame CPU time on the Models view while pulling ({} frames), ms | {p50:.3} | p99 {p99:.3} |",
                t.frames
            );
        }
        println!("| UI frame wall time, same frames, ms | {:.3} | p99 {:.3} ({}) |", t.wall.0, t.wall.1, t.training);
    }
    Ok(())
}

/// A fresh cache folder under the system's temporary folder.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("latent-studio-bench-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
