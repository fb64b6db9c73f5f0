//! PNG files that carry the settings that made them, as text chunks.

use std::path::Path;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::error::{EncodeError, FileError, FormatError};

/// The settings behind a saved image, stored in its PNG text chunks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageSettings {
    /// Model id.
    pub model: String,
    /// What the file shows: `image`, `strip`, `grid` or `animation`.
    pub kind: String,
    /// Seeds the latents came from, when they came from seeds.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// How the latents were made: `seed`, `slider`, `encode`, `lerp`, `slerp`, …
    pub method: String,
    /// The latent of each image, in order (after truncation: what was decoded).
    pub latents: Vec<Vec<f32>>,
    /// The truncation ψ applied to seeded or edited latents (GANs), if not 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<f32>,
}

/// Key of the JSON chunk with all the settings.
pub const SETTINGS_KEY: &str = "latent-studio";

impl ImageSettings {
    /// Text chunks: readable keys for other tools plus one JSON chunk for ours.
    pub fn text_chunks(&self) -> Vec<(String, String)> {
        let fmt = |z: &Vec<f32>| z.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",");
        let mut chunks = vec![
            ("Software".to_owned(), format!("Latent Studio {}", env!("CARGO_PKG_VERSION"))),
            ("Model".to_owned(), self.model.clone()),
            ("Method".to_owned(), self.method.clone()),
        ];
        if !self.seeds.is_empty() {
            let seeds = self.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
            chunks.push(("Seed".to_owned(), seeds));
        }
        chunks.push(("Latent".to_owned(), self.latents.iter().map(fmt).collect::<Vec<_>>().join(";")));
        chunks.push((SETTINGS_KEY.to_owned(), serde_json::to_string(self).unwrap_or_default()));
        chunks
    }
}

/// Encodes `image` as PNG bytes with `chunks` as iTXt text chunks.
pub fn encode_png(image: &RgbImage, chunks: &[(String, String)]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, image.width(), image.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        for (k, v) in chunks {
            enc.add_itxt_chunk(k.clone(), v.clone()).map_err(|e| EncodeError::new("PNG", e))?;
        }
        let mut writer = enc.write_header().map_err(|e| EncodeError::new("PNG", e))?;
        writer.write_image_data(image.as_raw()).map_err(|e| EncodeError::new("PNG", e))?;
        writer.finish().map_err(|e| EncodeError::new("PNG", e))?;
    }
    Ok(out)
}

/// The text a saved image or animation at `path` carries: a PNG's (or
/// APNG's) text chunks, or a GIF's comments in our `key NUL value` layout.
pub fn read_text_chunks(path: &Path) -> Result<Vec<(String, String)>, FileError> {
    let bytes = std::fs::read(path).map_err(|e| FileError::new(path, e))?;
    text_chunks(&bytes).map_err(|e| FileError::new(path, e))
}

/// [`read_text_chunks`] on a file's bytes, told apart by their signature.
pub fn text_chunks(bytes: &[u8]) -> Result<Vec<(String, String)>, FormatError> {
    if bytes.starts_with(b"GIF8") {
        return super::gif_text::gif_text_chunks(bytes);
    }
    png_text_chunks(bytes).map_err(|e| FormatError(format!("not a readable PNG: {e}")))
}

/// All text chunks (tEXt, zTXt and iTXt) of a PNG file's bytes, in that order.
pub fn png_text_chunks(bytes: &[u8]) -> Result<Vec<(String, String)>, png::DecodingError> {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let info = reader.info();
    let mut out: Vec<(String, String)> =
        info.uncompressed_latin1_text.iter().map(|c| (c.keyword.clone(), c.text.clone())).collect();
    for c in &info.compressed_latin1_text {
        out.push((c.keyword.clone(), c.get_text()?));
    }
    for c in &info.utf8_text {
        out.push((c.keyword.clone(), c.get_text()?));
    }
    Ok(out)
}

/// The settings our JSON chunk holds, if the PNG has one.
pub fn read_settings(path: &Path) -> Result<Option<ImageSettings>, FileError> {
    let chunks = read_text_chunks(path)?;
    let Some((_, json)) = chunks.iter().find(|(k, _)| k == SETTINGS_KEY) else {
        return Ok(None);
    };
    serde_json::from_str(json).map(Some).map_err(|e| FileError::new(path, format!("bad {SETTINGS_KEY} chunk: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip() {
        let settings = ImageSettings {
            model: "digits-2d".into(),
            kind: "image".into(),
            seeds: vec![42],
            method: "seed".into(),
            latents: vec![vec![0.25, -1.5]],
            truncation: Some(0.7),
        };
        let img = RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30]));
        let bytes = encode_png(&img, &settings.text_chunks()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_settings(&path).unwrap(), Some(settings));
        let text = read_text_chunks(&path).unwrap();
        assert!(text.contains(&("Latent".to_owned(), "0.25,-1.5".to_owned())));
        assert_eq!(image::open(&path).unwrap().to_rgb8(), img);
    }
}
