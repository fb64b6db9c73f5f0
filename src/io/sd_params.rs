//! The generation-parameters text that AUTOMATIC1111's web UI writes into the
//! `parameters` chunk of its PNGs (and ComfyUI, InvokeAI and others read):
//!
//! ```text
//! a prompt, possibly on several lines
//! Negative prompt: what to avoid
//! Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: v1-5-pruned-emaonly
//! ```
//!
//! Writing it makes our images readable by those tools; parsing it restores
//! another tool's settings in ours.

use serde::{Deserialize, Serialize};

/// Key of the PNG text chunk.
pub const PARAMETERS_KEY: &str = "parameters";

/// A text-to-image run's settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: usize,
    /// A1111's sampler name ("Euler a", "DDIM", "DDPM", …).
    pub sampler: String,
    pub cfg_scale: f64,
    pub seed: u64,
    pub width: usize,
    pub height: usize,
    pub model: String,
    /// Other `Key: value` pairs of the settings line, in order (kept, not interpreted).
    pub extra: Vec<(String, String)>,
}

/// Why a parameters text could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("not a generation-parameters text: {0}")]
pub struct ParamsError(pub String);

impl GenerationParams {
    /// The text A1111 writes.
    pub fn to_a1111(&self) -> String {
        let mut text = self.prompt.clone();
        if !self.negative_prompt.is_empty() {
            text.push_str(&format!("\nNegative prompt: {}", self.negative_prompt));
        }
        let mut pairs = vec![
            ("Steps".to_owned(), self.steps.to_string()),
            ("Sampler".to_owned(), self.sampler.clone()),
            ("CFG scale".to_owned(), format_number(self.cfg_scale)),
            ("Seed".to_owned(), self.seed.to_string()),
            ("Size".to_owned(), format!("{}x{}", self.width, self.height)),
            ("Model".to_owned(), self.model.clone()),
        ];
        pairs.extend(self.extra.iter().cloned());
        let line = pairs.iter().map(|(k, v)| format!("{k}: {}", quote_if_needed(v))).collect::<Vec<_>>().join(", ");
        format!("{text}\n{line}")
    }

    /// Reads A1111's text: prompt lines, an optional `Negative prompt:` (which
    /// may span lines), and a last line of `Key: value` pairs starting with `Steps:`.
    pub fn parse_a1111(text: &str) -> Result<Self, ParamsError> {
        let text = text.trim_end();
        let (body, settings) = match text.rfind('\n') {
            Some(i) if text[i + 1..].trim_start().starts_with("Steps:") => (&text[..i], &text[i + 1..]),
            _ if text.trim_start().starts_with("Steps:") => ("", text),
            _ => return Err(ParamsError("no settings line starting with \"Steps:\"".into())),
        };
        let (prompt, negative) = match body.find("Negative prompt:") {
            Some(i) => (body[..i].trim_end_matches('\n'), body[i + "Negative prompt:".len()..].trim()),
            None => (body, ""),
        };
        let mut params = Self { prompt: prompt.to_owned(), negative_prompt: negative.to_owned(), ..Self::default() };
        for (key, value) in split_pairs(settings.trim())? {
            let number = |what: &str| ParamsError(format!("{what} {value:?} is not a number"));
            match key.as_str() {
                "Steps" => params.steps = value.parse().map_err(|_| number("Steps"))?,
                "Sampler" => params.sampler = value,
                "CFG scale" => params.cfg_scale = value.parse().map_err(|_| number("CFG scale"))?,
                "Seed" => params.seed = value.parse().map_err(|_| number("Seed"))?,
                "Size" => {
                    let (w, h) =
                        value.split_once('x').ok_or_else(|| ParamsError(format!("Size {value:?} is not WxH")))?;
                    params.width = w.trim().parse().map_err(|_| number("width"))?;
                    params.height = h.trim().parse().map_err(|_| number("height"))?;
                }
                "Model" => params.model = value,
                _ => params.extra.push((key, value)),
            }
        }
        Ok(params)
    }
}

/// The parameters in the `parameters` chunk of the PNG at `path` (ours or
/// another tool's); `Ok(None)` if it has none.
pub fn read_generation_params(path: &std::path::Path) -> Result<Option<GenerationParams>, super::error::FileError> {
    let chunks = super::png_meta::read_text_chunks(path)?;
    let Some((_, text)) = chunks.iter().find(|(k, _)| k == PARAMETERS_KEY) else {
        return Ok(None);
    };
    GenerationParams::parse_a1111(text).map(Some).map_err(|e| super::error::FileError::new(path, e))
}

/// `7` rather than `7.0`, as A1111 writes whole CFG scales.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v}") }
}

/// Values with a comma or colon are written in double quotes (JSON string rules).
fn quote_if_needed(v: &str) -> String {
    if v.contains(',') || v.contains(':') || v.contains('"') {
        serde_json::to_string(v).unwrap_or_else(|_| v.to_owned())
    } else {
        v.to_owned()
    }
}

/// `Key: value, Key: "quoted, value", …` into pairs.
fn split_pairs(line: &str) -> Result<Vec<(String, String)>, ParamsError> {
    let mut pairs = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        // A last key may have an empty value ("Model:" once the line is trimmed).
        if rest.ends_with(':') && !rest.contains(": ") {
            pairs.push((rest[..rest.len() - 1].trim().to_owned(), String::new()));
            break;
        }
        let colon = rest.find(": ").ok_or_else(|| ParamsError(format!("{rest:?} has no \"Key: value\"")))?;
        let key = rest[..colon].trim().to_owned();
        let after = &rest[colon + 2..];
        let (value, remainder) = if after.starts_with('"') {
            // A JSON string: find its closing quote, honouring escapes.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or_else(|| ParamsError(format!("unclosed quote in {key}")))?;
            let value: String = serde_json::from_str(&after[..=end]).unwrap_or_else(|_| after[1..end].to_owned());
            (value, &after[end + 1..])
        } else {
            match after.find(", ") {
                Some(i) => (after[..i].to_owned(), &after[i..]),
                None => (after.to_owned(), ""),
            }
        };
        pairs.push((key, value.trim().to_owned()));
        rest = remainder.trim_start_matches(',').trim_start();
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_a1111_string_parses() {
        let text = "a photo of a cat, highly detailed\nsitting on a chair\nNegative prompt: blurry, lowres\n\
            Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3591837, Size: 512x768, \
            Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: \"cat: 1a2b, dog: 3c4d\", Version: v1.10.1";
        let p = GenerationParams::parse_a1111(text).unwrap();
        assert_eq!(p.prompt, "a photo of a cat, highly detailed\nsitting on a chair");
        assert_eq!(p.negative_prompt, "blurry, lowres");
        assert_eq!((p.steps, p.sampler.as_str(), p.cfg_scale, p.seed), (20, "Euler a", 7.0, 3591837));
        assert_eq!((p.width, p.height, p.model.as_str()), (512, 768, "v1-5-pruned-emaonly"));
        let extra = |k: &str| p.extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(extra("Schedule type"), Some("Automatic"));
        assert_eq!(extra("Lora hashes"), Some("cat: 1a2b, dog: 3c4d"));
        assert_eq!(extra("Version"), Some("v1.10.1"));
    }

    #[test]
    fn written_text_reads_back_the_same() {
        let p = GenerationParams {
            prompt: "red heart".into(),
            negative_prompt: "text, watermark".into(),
            steps: 30,
            sampler: "DDIM".into(),
            cfg_scale: 7.5,
            seed: 12,
            width: 64,
            height: 64,
            model: "emoji-ldm".into(),
            extra: vec![("Denoising strength".into(), "0.6".into()), ("Note".into(), "a, b: c".into())],
        };
        let text = p.to_a1111();
        assert!(text.contains("Steps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 12, Size: 64x64, Model: emoji-ldm"));
        assert_eq!(GenerationParams::parse_a1111(&text).unwrap(), p);
        let no_negative = GenerationParams { negative_prompt: String::new(), ..p };
        assert_eq!(GenerationParams::parse_a1111(&no_negative.to_a1111()).unwrap(), no_negative);
    }

    #[test]
    fn a_png_parameters_chunk_round_trips() {
        let p = GenerationParams {
            prompt: "cat".into(),
            steps: 4,
            sampler: "Euler a".into(),
            seed: 9,
            ..Default::default()
        };
        let img = image::RgbImage::new(2, 2);
        let png = super::super::png_meta::encode_png(&img, &[(PARAMETERS_KEY.into(), p.to_a1111())]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, png).unwrap();
        assert_eq!(read_generation_params(&path).unwrap(), Some(p));
        let plain = dir.path().join("plain.png");
        std::fs::write(&plain, super::super::png_meta::encode_png(&img, &[]).unwrap()).unwrap();
        assert_eq!(read_generation_params(&plain).unwrap(), None);
    }

    #[test]
    fn text_without_settings_is_refused() {
        assert!(GenerationParams::parse_a1111("just a caption").is_err());
        assert!(GenerationParams::parse_a1111("x\nSteps: many, Seed: 1").is_err());
    }
}
