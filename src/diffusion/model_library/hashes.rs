//! The hashes AUTOMATIC1111 writes into images and uses to find models:
//! a checkpoint's short hash is the first 10 hex digits of its file's
//! sha256 (`Model hash:`); a LoRA's is the first 12 of the sha256 of its
//! safetensors data section, header left out (`Lora hashes:`, kohya's
//! "addnet" hash). Hashing a checkpoint reads gigabytes, so results are
//! cached by path, size and modification time in one JSON file.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Which hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashKind {
    /// sha256 of the whole file.
    File,
    /// sha256 of a safetensors file after its header.
    Data,
}

/// The sha256 (hex) of a file, or of its safetensors data section.
pub fn sha256_hex(path: &Path, kind: HashKind) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    if kind == HashKind::Data {
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let header = u64::from_le_bytes(len);
        std::io::copy(&mut (&mut file).take(header), &mut std::io::sink())?;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CachedHash {
    size: u64,
    modified: u64,
    kind: HashKind,
    sha256: String,
}

/// Hashes by path, remembered across runs in `file` (JSON).
pub struct HashCache {
    file: Option<PathBuf>,
    entries: HashMap<String, CachedHash>,
}

/// Where the studio keeps caches: `$XDG_CACHE_HOME/latent-studio` or `~/.cache/latent-studio`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("latent-studio"))
}

impl HashCache {
    /// The cache kept in `file` (read if it exists; `None` keeps nothing).
    pub fn open(file: Option<PathBuf>) -> Self {
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Self { file, entries }
    }

    /// The studio's shared cache file.
    pub fn default_location() -> Self {
        Self::open(cache_dir().map(|d| d.join("hashes.json")))
    }

    /// The full sha256 of `path`, from the cache when the file is unchanged.
    pub fn sha256(&mut self, path: &Path, kind: HashKind) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let key = format!("{}#{kind:?}", path.display());
        if let Some(hit) = self.entries.get(&key).filter(|c| c.size == meta.len() && c.modified == modified) {
            return Ok(hit.sha256.clone());
        }
        let sha256 = sha256_hex(path, kind)?;
        self.entries.insert(key, CachedHash { size: meta.len(), modified, kind, sha256: sha256.clone() });
        Ok(sha256)
    }

    /// A1111's checkpoint short hash (10 hex digits).
    pub fn model_hash(&mut self, path: &Path) -> std::io::Result<String> {
        Ok(self.sha256(path, HashKind::File)?[..10].to_owned())
    }

    /// A1111's LoRA short hash (12 hex digits of the data section's sha256).
    pub fn lora_hash(&mut self, path: &Path) -> std::io::Result<String> {
        Ok(self.sha256(path, HashKind::Data)?[..12].to_owned())
    }

    /// Writes the cache back (a failure only costs recomputation later).
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string(&self.entries) {
            let tmp = file.with_extension("json.tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
    }
}

/// What an image records of the files that made it, as A1111 writes it:
/// the checkpoint's short hash (for a single file) and each LoRA's name
/// (file stem) with its short hash. Unreadable files are left out.
pub fn record_hashes(checkpoint: Option<&Path>, loras: &[PathBuf]) -> (Option<String>, Vec<(String, String)>) {
    let mut cache = HashCache::default_location();
    let model = checkpoint.filter(|p| p.is_file()).and_then(|p| cache.model_hash(p).ok());
    let loras = loras
        .iter()
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            Some((name, cache.lora_hash(path).ok()?))
        })
        .collect();
    cache.save();
    (model, loras)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_of_a_known_file_and_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.safetensors");
        // An 8-byte length 2, a 2-byte "{}" header, then "abc".
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}abc");
        std::fs::write(&path, &bytes).unwrap();
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            sha256_hex(&path, HashKind::Data).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let cache_file = dir.path().join("cache.json");
        let mut cache = HashCache::open(Some(cache_file.clone()));
        let full = cache.model_hash(&path).unwrap();
        assert_eq!(full.len(), 10);
        cache.save();
        let mut again = HashCache::open(Some(cache_file));
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.model_hash(&path).unwrap(), full);
        assert_eq!(again.lora_hash(&path).unwrap(), "ba7816bf8f01");
    }
}
