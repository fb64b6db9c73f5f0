//! `pull REPO [--file PATH …] [--revision REV]`: downloads from the Hub
//! into its shared cache with a progress bar; and the downloaded repos as
//! `models` lists them.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::diffusion::model_library::classify;
use crate::hub::cache::RepoId;
use crate::hub::config::HubConfig;
use crate::hub::download::{Flow, Outcome};
use crate::hub::installed::{InstalledRepo, installed, text_model_id};
use crate::hub::pull::{plan, pull};
use crate::hub::{Hub, HubError};

/// Runs `pull`.
pub fn run_pull(repo: &str, files: &[String], revision: &str) -> anyhow::Result<()> {
    let repo = RepoId::parse(repo)?;
    let hub = Hub::new(HubConfig::from_env());
    let plan = match plan(&hub, &repo, revision, files) {
        Ok(plan) => plan,
        // Offline, named files may still be in the cache.
        Err(HubError::Offline { .. }) if !files.is_empty() => return pull_offline(&hub, &repo, files, revision),
        Err(e) => return Err(e.into()),
    };
    eprintln!(
        "{repo} at {}: {} files, {:.1} MB{}",
        &plan.revision[..12],
        plan.files.len(),
        plan.total_bytes() as f64 / 1e6,
        plan.license.as_deref().map(|l| format!(", licence {l}")).unwrap_or_default()
    );
    let bar = ProgressBar::new(plan.total_bytes());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let outcome = pull(&hub, &plan, revision, &mut |p| {
        bar.set_position(p.done);
        bar.set_message(p.file.clone());
        Flow::Continue
    });
    bar.finish_and_clear();
    match outcome? {
        Outcome::Done(snapshot) => {
            println!("{}", snapshot.display());
            Ok(())
        }
        other => anyhow::bail!("stopped: {other:?}"),
    }
}

fn pull_offline(hub: &Hub, repo: &RepoId, files: &[String], revision: &str) -> anyhow::Result<()> {
    for file in files {
        let request = crate::hub::download::FileRequest { repo, revision, path: file, sha256: None };
        if let Outcome::Done(path) = crate::hub::download::fetch_file(hub, &request, &mut |_, _| Flow::Continue)? {
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// What a downloaded repo gives the studio, read from its files.
fn repo_kind(repo: &InstalledRepo) -> &'static str {
    let Some(snapshot) = &repo.snapshot else { return "incomplete" };
    if repo.ggufs().next().is_some() {
        return "text";
    }
    if repo.files.iter().any(|f| f == "model_index.json") {
        return "diffusion";
    }
    let kinds: Vec<_> =
        repo.files.iter().filter(|f| f.ends_with(".safetensors")).map(|f| classify(&snapshot.join(f))).collect();
    use crate::spec::library::ItemKind;
    match kinds.first() {
        Some(ItemKind::Checkpoint { .. }) => "diffusion",
        Some(ItemKind::Lora) => "lora",
        Some(ItemKind::PreviewDecoder) => "preview decoder",
        Some(ItemKind::Vae) => "vae",
        _ if repo.files.iter().any(|f| f.starts_with("decoder")) => "preview decoder",
        _ => "other",
    }
}

/// The hub cache's repos as `models --json` rows.
pub fn downloaded_rows() -> Vec<serde_json::Value> {
    let config = HubConfig::from_env();
    installed(&config.cache_dir)
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.repo.as_str(), "source": "hub", "kind": repo_kind(r),
                "family": if repo_kind(r) == "text" { "text" } else { "diffusion" },
                "license": r.license, "size": r.size, "partial_bytes": r.partial,
                "path": r.snapshot.as_ref().unwrap_or(&r.root).display().to_string(),
                "files": r.files,
                "text_models": r.ggufs().map(|f| text_model_id(&r.repo, f)).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The hub cache's repos as `models` table lines.
pub fn print_downloaded() {
    let config = HubConfig::from_env();
    let repos = installed(&config.cache_dir);
    if repos.is_empty() {
        return;
    }
    println!("\ndownloaded ({}):", config.cache_dir.display());
    for r in &repos {
        let license = r.license.as_deref().unwrap_or("?");
        println!("{:<48} {:<16} {:>10.1} MB  {}", r.repo.as_str(), repo_kind(r), r.size as f64 / 1e6, license);
    }
}
