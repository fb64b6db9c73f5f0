//! One output file as the History lists it: what made it, read from the
//! file itself (our PNG record, A1111's `parameters`, the latent models'
//! settings, a saved text's header).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::image_record::{ImageRecord, RECORD_KEY, image_record_from_chunks};
use crate::io::png_meta::{ImageSettings, text_chunks};

/// What kind of output a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// A diffusion model's image (ours or another tool's, with its settings).
    Diffusion,
    /// A VAE's or GAN's image, strip or grid.
    Latent,
    /// An animation (GIF, APNG).
    Animation,
    /// A saved text.
    Text,
    /// An image without settings.
    Other,
}

impl Family {
    pub const ALL: [Family; 5] = [Family::Diffusion, Family::Latent, Family::Animation, Family::Text, Family::Other];

    pub fn label(self) -> &'static str {
        match self {
            Family::Diffusion => "diffusion",
            Family::Latent => "VAE / GAN",
            Family::Animation => "animation",
            Family::Text => "text",
            Family::Other => "other",
        }
    }
}

/// The extensions the History lists.
pub const EXTENSIONS: [&str; 7] = ["png", "apng", "gif", "jpg", "jpeg", "webp", "txt"];

/// One listed file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub path: PathBuf,
    /// Modification time, seconds since the Unix epoch.
    pub modified: i64,
    /// The same in nanoseconds: what tells a changed file.
    pub modified_ns: u64,
    pub size: u64,
    pub family: Family,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// A diffusion image's full settings ("reuse settings", the latent view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ImageRecord>,
    /// Why the file's settings could not be read, if they could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl HistoryEntry {
    /// Reads `path`'s metadata (a file that cannot be read is listed with the reason).
    pub fn read(path: &Path, modified_ns: u64, size: u64) -> Self {
        let mut entry = Self {
            path: path.to_owned(),
            modified: (modified_ns / 1_000_000_000) as i64,
            modified_ns,
            size,
            family: Family::Other,
            prompt: String::new(),
            model: String::new(),
            seeds: Vec::new(),
            record: None,
            problem: None,
        };
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_lowercase).unwrap_or_default();
        let outcome = match extension.as_str() {
            "png" | "apng" | "gif" => entry.read_picture(),
            "txt" => entry.read_text(),
            _ => Ok(()),
        };
        if let Err(problem) = outcome {
            entry.problem = Some(problem);
        }
        entry
    }

    /// A PNG, APNG or GIF: its text chunks (GIF comments) say how it was made.
    fn read_picture(&mut self) -> Result<(), String> {
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        if bytes.starts_with(b"GIF8") || bytes.windows(4).take(4096).any(|w| w == b"acTL") {
            self.family = Family::Animation;
        }
        let chunks = text_chunks(&bytes).map_err(|e| e.to_string())?;
        // Ours carries either a diffusion record or a latent model's settings under one key.
        if let Some((_, json)) = chunks.iter().find(|(k, _)| k == RECORD_KEY)
            && let Ok(settings) = serde_json::from_str::<ImageSettings>(json)
        {
            self.family = if self.family == Family::Animation { Family::Animation } else { Family::Latent };
            self.model = settings.model;
            self.seeds = settings.seeds;
            self.prompt = settings.method;
            return Ok(());
        }
        if let Some(record) = image_record_from_chunks(&chunks).map_err(|e| e.0)? {
            if self.family != Family::Animation {
                self.family = Family::Diffusion;
            }
            self.prompt = record.request.prompt.clone();
            self.model = record.model.clone();
            self.seeds = vec![record.request.seed];
            self.record = Some(record);
        }
        Ok(())
    }

    fn read_text(&mut self) -> Result<(), String> {
        self.family = Family::Text;
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let Some(header) = text.strip_prefix("---\n").and_then(|t| t.split_once("\n---\n")).map(|(h, _)| h) else {
            return Ok(());
        };
        let unquote = |v: &str| serde_json::from_str::<String>(v).unwrap_or_else(|_| v.to_owned());
        for line in header.lines() {
            match line.split_once(": ") {
                Some(("model_name", v)) => self.model = unquote(v),
                Some(("prompt", v)) => self.prompt = unquote(v),
                Some(("seed", v)) => self.seeds = v.parse().map(|s| vec![s]).unwrap_or_default(),
                _ => {}
            }
        }
        Ok(())
    }

    /// The file's date, `YYYY-MM-DD` (UTC).
    pub fn date(&self) -> String {
        civil_date(self.modified)
    }

    /// Whether every word of `query` (case-insensitive) appears in the
    /// prompt, model, seed, date or file name.
    pub fn matches(&self, query: &str) -> bool {
        let name = self.path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let haystack = format!(
            "{} {} {} {} {}",
            self.prompt.to_lowercase(),
            self.model.to_lowercase(),
            seeds.join(" "),
            self.date(),
            name
        );
        query.split_whitespace().all(|word| haystack.contains(&word.to_lowercase()))
    }
}

/// `YYYY-MM-DD` (UTC) of `secs` since the Unix epoch.
pub fn civil_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        let at = |secs: u64| HistoryEntry::read(Path::new("none.bmp"), secs * 1_000_000_000, 0).date();
        assert_eq!(at(0), "1970-01-01");
        assert_eq!(at(951_782_400), "2000-02-29");
        assert_eq!(at(1_796_428_800), "2026-12-05");
    }
}
