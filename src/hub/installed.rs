//! What the hub cache holds, whoever downloaded it (the studio or Python
//! tools): each repo with its newest snapshot, size on disk, licence (from
//! the model card's metadata) and files; the GGUF files among them as text
//! models for the Text view; and deleting a repo.

use std::path::{Path, PathBuf};

use super::cache::{RepoCache, RepoId};
use crate::io::manifest::{Family, ModelManifest};

/// One repo in the cache.
#[derive(Clone, Debug, PartialEq)]
pub struct InstalledRepo {
    pub repo: RepoId,
    /// `models--owner--name`.
    pub root: PathBuf,
    /// The snapshot `main` points at, else the newest one.
    pub snapshot: Option<PathBuf>,
    /// Bytes of its blobs (each file once, however many snapshots link it).
    pub size: u64,
    /// Bytes of downloads not finished (paused, or cut off).
    pub partial: u64,
    /// The model card's `license:`.
    pub license: Option<String>,
    /// The snapshot's files, `/`-separated, sorted.
    pub files: Vec<String>,
}

impl InstalledRepo {
    /// The snapshot's GGUF files.
    pub fn ggufs(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(String::as_str).filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
    }
}

/// Every `models--*` folder of `cache_dir`, sorted by repo id.
pub fn installed(cache_dir: &Path) -> Vec<InstalledRepo> {
    let Ok(entries) = std::fs::read_dir(cache_dir) else { return Vec::new() };
    let mut repos: Vec<InstalledRepo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("models--")?.replacen("--", "/", 1);
            let repo = RepoId::parse(&id).ok()?;
            Some(describe(cache_dir, repo))
        })
        .collect();
    repos.sort_by_key(|r| r.repo.as_str().to_lowercase());
    repos
}

fn describe(cache_dir: &Path, repo: RepoId) -> InstalledRepo {
    let cache = RepoCache::new(cache_dir, &repo);
    let root = cache.root().to_path_buf();
    let snapshot =
        cache.commit_of("main").map(|c| root.join("snapshots").join(c)).filter(|p| p.is_dir()).or_else(|| {
            let entries = std::fs::read_dir(root.join("snapshots")).ok()?;
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
                .map(|e| e.path())
        });
    let (mut size, mut partial) = (0, 0);
    for blob in std::fs::read_dir(root.join("blobs")).into_iter().flatten().flatten() {
        let len = blob.metadata().map_or(0, |m| m.len());
        if blob.file_name().to_string_lossy().ends_with(".incomplete") {
            partial += len;
        } else {
            size += len;
        }
    }
    let mut files = Vec::new();
    if let Some(snapshot) = &snapshot {
        list_files(snapshot, "", &mut files);
    }
    files.sort();
    let license = snapshot
        .as_ref()
        .and_then(|s| std::fs::read_to_string(s.join("README.md")).ok())
        .and_then(|card| card_license(&card));
    InstalledRepo { repo, root, snapshot, size, partial, license, files }
}

fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, &format!("{prefix}{name}/"), out);
        } else if path.is_file() {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// The `license:` of a model card's YAML front matter (`license: mit`, or a list).
pub fn card_license(card: &str) -> Option<String> {
    let front = card.strip_prefix("---")?;
    let front = &front[..front.find("\n---")?];
    let mut lines = front.lines().skip_while(|l| !l.starts_with("license:"));
    let first = lines.next()?.trim_start_matches("license:").trim();
    let clean = |s: &str| s.trim().trim_matches(['"', '\'']).to_owned();
    if !first.is_empty() {
        let list = first.trim_start_matches('[').trim_end_matches(']');
        return Some(list.split(',').map(clean).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", "))
            .filter(|s| !s.is_empty());
    }
    let items: Vec<String> =
        lines.map_while(|l| l.trim_start().strip_prefix("- ").map(clean)).filter(|s| !s.is_empty()).collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// Deletes a repo's folder (blobs, snapshots, refs, partial downloads) and its locks.
pub fn delete(cache_dir: &Path, repo: &RepoId) -> std::io::Result<()> {
    let cache = RepoCache::new(cache_dir, repo);
    std::fs::remove_dir_all(cache.root())?;
    let locks = cache_dir.join(".locks").join(repo.folder_name());
    if locks.exists() {
        std::fs::remove_dir_all(locks)?;
    }
    Ok(())
}

/// The id a downloaded GGUF file has in the studio: `owner/name:file.gguf`.
pub fn text_model_id(repo: &RepoId, file: &str) -> String {
    format!("{repo}:{file}")
}

/// The GGUF files of the cache as text models (what the Text view and
/// `latent-studio text --model` pick from).
pub fn text_manifests(repos: &[InstalledRepo]) -> Vec<ModelManifest> {
    let mut manifests = Vec::new();
    for repo in repos {
        let Some(snapshot) = &repo.snapshot else { continue };
        for file in repo.ggufs() {
            let quant = super::quant::quant_label(file);
            let stem = file.rsplit('/').next().unwrap_or(file).trim_end_matches(".gguf");
            manifests.push(ModelManifest {
                id: text_model_id(&repo.repo, file),
                family: Family::Text,
                name: format!("{stem} (Hub)"),
                latent_dim: 0,
                image_size: [0, 0],
                channels: 0,
                license: repo.license.clone().unwrap_or_else(|| "see the model card".into()),
                dataset: format!("downloaded from {}", repo.repo),
                weights: file.to_owned(),
                classes: Vec::new(),
                latent_map: None,
                config: serde_json::json!({"format": "gguf", "quantization": quant, "repo": repo.repo.as_str()}),
                dir: snapshot.clone(),
            });
        }
    }
    manifests
}

/// The models folder's manifests plus the GGUF files of the hub cache in `cache_dir`.
pub fn discover_with_hub(
    models_dir: &Path,
    cache_dir: &Path,
) -> (Vec<ModelManifest>, Vec<crate::io::manifest::ManifestError>) {
    let (mut found, failed) = crate::io::manifest::discover(models_dir);
    found.extend(text_manifests(&installed(cache_dir)));
    (found, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_are_read_from_the_card_front_matter() {
        assert_eq!(card_license("---\nlicense: apache-2.0\ntags: [x]\n---\n# M").as_deref(), Some("apache-2.0"));
        assert_eq!(card_license("---\nlicense:\n- mit\n- other\nlanguage: en\n---\n").as_deref(), Some("mit, other"));
        assert_eq!(card_license("---\nlicense: [\"mit\", cc-by-4.0]\n---\n").as_deref(), Some("mit, cc-by-4.0"));
        assert_eq!(card_license("# no front matter\nlicense: mit"), None);
        assert_eq!(card_license("---\ntags: [a]\n---\nlicense: mit"), None);
    }

    #[test]
    fn the_cache_is_listed_with_sizes_files_and_text_models() {
        let dir = tempfile::tempdir().unwrap();
        let repo = RepoId::parse("owner/m-GGUF").unwrap();
        let cache = RepoCache::new(dir.path(), &repo);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(cache.root().join("blobs")).unwrap();
        std::fs::write(cache.blob("aa"), b"---\nlicense: mit\n---\n").unwrap();
        std::fs::write(cache.blob("bb"), vec![0u8; 1000]).unwrap();
        std::fs::write(cache.incomplete_blob("cc"), vec![0u8; 10]).unwrap();
        cache.link_snapshot(commit, "README.md", "aa").unwrap();
        cache.link_snapshot(commit, "sub/m-Q4_K_M.gguf", "bb").unwrap();
        cache.write_ref("main", commit).unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-repo")).unwrap();
        let repos = installed(dir.path());
        assert_eq!(repos.len(), 1);
        let r = &repos[0];
        assert_eq!((r.size, r.partial, r.license.as_deref()), (1021, 10, Some("mit")));
        assert_eq!(r.files, ["README.md", "sub/m-Q4_K_M.gguf"]);
        let texts = text_manifests(&repos);
        assert_eq!(texts.len(), 1);
        assert_eq!(texts[0].id, "owner/m-GGUF:sub/m-Q4_K_M.gguf");
        assert_eq!(std::fs::read(texts[0].weights_path()).unwrap().len(), 1000);
        delete(dir.path(), &repo).unwrap();
        assert!(installed(dir.path()).is_empty());
    }
}
