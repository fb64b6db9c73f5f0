//! `library --dir DIR [--json]`: the models in the user's folders, as the
//! Image view lists them.

use std::path::PathBuf;

use crate::diffusion::model_library::hashes::HashCache;
use crate::diffusion::model_library::scan;

/// Runs `library`.
pub fn run(dirs: &[PathBuf], json: bool) -> anyhow::Result<()> {
    for dir in dirs {
        if !dir.is_dir() {
            anyhow::bail!("{} is not a folder", dir.display());
        }
    }
    let mut hashes = HashCache::default_location();
    let items = scan(dirs, Some(&mut hashes));
    hashes.save();
    if json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    for item in &items {
        let size = item.size as f64 / (1024.0 * 1024.0);
        let hash = item.hash.as_deref().unwrap_or("");
        println!("{:<24} {:>10.1} MB  {:<12}  {}", item.kind.label(), size, hash, item.path.display());
    }
    if items.is_empty() {
        eprintln!("no models found");
    }
    Ok(())
}
