//! `history`: the outputs in a folder, newest first, from their own metadata.

use std::path::PathBuf;

use clap::Args;

use crate::diffusion::model_library::hashes::cache_dir;
use crate::history::{Family, HistoryIndex};
use crate::io::output::default_output_dir;

/// Flags of `history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The output folder (default: the studio's, ~/Pictures/Latent Studio).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only files whose prompt, model, seed, date (YYYY-MM-DD) or name hold every word.
    #[arg(long, default_value = "")]
    search: String,
    /// Only one family: diffusion, latent, animation, text or other.
    #[arg(long, value_parser = parse_family)]
    family: Option<Family>,
    /// Print JSON (one array of entries) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_family(s: &str) -> Result<Family, String> {
    let wanted = s.trim().to_lowercase();
    Family::ALL
        .into_iter()
        .find(|f| format!("{f:?}").to_lowercase() == wanted)
        .ok_or_else(|| format!("unknown family {s:?}: diffusion, latent, animation, text or other"))
}

/// Runs `history`.
pub fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(default_output_dir);
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder", dir.display());
    }
    let mut index = HistoryIndex::open(&dir, cache_dir().as_deref());
    let refresh = index.refresh();
    let found: Vec<_> = index.search(&args.search, args.family).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    for e in &found {
        let seeds: Vec<String> = e.seeds.iter().map(u64::to_string).collect();
        let name = e.path.strip_prefix(&dir).unwrap_or(&e.path).display().to_string();
        let mut prompt: String = e.prompt.chars().take(48).collect();
        if e.prompt.chars().count() > 48 {
            prompt.push('…');
        }
        println!(
            "{}  {:<10} {:<18} {:<12} {:<50} {}",
            e.date(),
            e.family.label(),
            e.model,
            seeds.join(","),
            prompt,
            name
        );
    }
    eprintln!(
        "{} of {} files in {} ({} read, {} from the index)",
        found.len(),
        index.entries().len(),
        dir.display(),
        refresh.read,
        refresh.kept
    );
    Ok(())
}
