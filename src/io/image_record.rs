//! What a generated PNG says about how it was made: AUTOMATIC1111's
//! `parameters` text (read by A1111, ComfyUI, InvokeAI and us) and our own
//! JSON chunk with the exact request. Reading prefers our chunk and falls
//! back to another tool's `parameters`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::io::error::{FileError, FormatError};
use crate::io::png_meta::read_text_chunks;
use crate::io::sd_params::{GenerationParams, PARAMETERS_KEY};
use crate::spec::image::{ImageRequest, SamplerKind, VariationSeed};
use crate::spec::latent_control::LatentRecipe;

/// `name: hash, name: hash` (the value of A1111's `Lora hashes`).
pub fn parse_lora_hashes(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|pair| pair.rsplit_once(':'))
        .map(|(name, hash)| (name.trim().to_owned(), hash.trim().to_lowercase()))
        .filter(|(name, hash)| !name.is_empty() && !hash.is_empty())
        .collect()
}

/// Key of our JSON chunk.
pub const RECORD_KEY: &str = "latent-studio";

/// A generated image's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub request: ImageRequest,
    /// Model id or folder name.
    pub model: String,
    /// img2img: the init image's file name.
    #[serde(default)]
    pub init_image: Option<String>,
    /// Where the initial latent came from when not from the seed (a `.npy`
    /// file, or an interpolation between two seeds' noise).
    #[serde(default)]
    pub noise_origin: Option<String>,
    /// A1111's short hash of the checkpoint file (`Model hash:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_hash: Option<String>,
    /// The LoRAs used, by name, with A1111's short hashes (`Lora hashes:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lora_hashes: Vec<(String, String)>,
    /// Made from latent controls (pad, concept sliders, travel): how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent: Option<LatentRecipe>,
    /// Made on a remote server: which, and the infotext it wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<ServedImage>,
}

/// Where a remote image was made and what the server said of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedImage {
    /// The server's base URL.
    pub backend: String,
    /// The server's own infotext (A1111's `parameters`), if it gave one.
    pub infotext: Option<String>,
}

impl ImageRecord {
    /// The record of an image made from latent controls (no init image, checkpoint hash or LoRAs).
    pub fn from_latent(request: ImageRequest, model: String, latent: LatentRecipe) -> Self {
        Self {
            request,
            model,
            init_image: None,
            noise_origin: None,
            model_hash: None,
            lora_hashes: Vec::new(),
            latent: Some(latent),
            served: None,
        }
    }

    /// The A1111 form (img2img adds `Denoising strength`).
    pub fn to_params(&self) -> GenerationParams {
        let r = &self.request;
        let mut extra = Vec::new();
        let (sampler, schedule) = r.sampler.infotext();
        if let Some(schedule) = schedule {
            extra.push(("Schedule type".to_owned(), schedule.to_owned()));
        }
        if let Some(v) = r.variation.filter(|v| v.strength != 0.0) {
            extra.push(("Variation seed".to_owned(), v.seed.to_string()));
            extra.push(("Variation seed strength".to_owned(), v.strength.to_string()));
        }
        if self.init_image.is_some() {
            extra.push(("Denoising strength".to_owned(), r.strength.to_string()));
        }
        if let Some(latent) = &self.latent {
            extra.extend(latent.infotext());
        }
        if let Some(hash) = &self.model_hash {
            extra.push(("Model hash".to_owned(), hash.clone()));
        }
        if !self.lora_hashes.is_empty() {
            let pairs: Vec<String> = self.lora_hashes.iter().map(|(n, h)| format!("{n}: {h}")).collect();
            extra.push(("Lora hashes".to_owned(), pairs.join(", ")));
        }
        GenerationParams {
            prompt: r.prompt.clone(),
            negative_prompt: r.negative.clone(),
            steps: r.steps,
            sampler: sampler.into(),
            cfg_scale: r.guidance,
            seed: r.seed,
            width: r.width,
            height: r.height,
            model: self.model.clone(),
            extra,
        }
    }

    /// A record from another tool's parameters; samplers we lack become Euler a.
    pub fn from_params(p: &GenerationParams) -> Self {
        let field = |key: &str| p.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let strength = field("Denoising strength").and_then(|v| v.parse().ok());
        let sampler = SamplerKind::from_infotext(&p.sampler, field("Schedule type"));
        let variation = field("Variation seed").and_then(|v| v.parse().ok()).map(|seed| VariationSeed {
            seed,
            strength: field("Variation seed strength").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        });
        Self {
            request: ImageRequest {
                prompt: p.prompt.clone(),
                negative: p.negative_prompt.clone(),
                steps: p.steps,
                sampler: sampler.unwrap_or(SamplerKind::EulerAncestral),
                guidance: p.cfg_scale,
                width: p.width,
                height: p.height,
                seed: p.seed,
                strength: strength.unwrap_or(0.75),
                variation,
            },
            model: p.model.clone(),
            init_image: None,
            noise_origin: None,
            model_hash: field("Model hash").map(str::to_owned),
            lora_hashes: field("Lora hashes").map(parse_lora_hashes).unwrap_or_default(),
            latent: None,
            served: None,
        }
    }

    /// PNG text chunks: `parameters` (a remote server's own infotext where
    /// it gave one, so its users read what it wrote) and ours.
    pub fn chunks(&self) -> Vec<(String, String)> {
        let json = serde_json::to_string(self).unwrap_or_default();
        let parameters = match self.served.as_ref().and_then(|s| s.infotext.clone()) {
            Some(infotext) => infotext,
            None => self.to_params().to_a1111(),
        };
        vec![(PARAMETERS_KEY.to_owned(), parameters), (RECORD_KEY.to_owned(), json)]
    }

    /// The record of an image a server at `backend` made for `request`
    /// (see [`Self::merge_served`]).
    pub fn from_server(
        request: ImageRequest,
        model: String,
        init_image: Option<String>,
        backend: &str,
        infotext: Option<String>,
        seed: Option<u64>,
    ) -> Self {
        let mut record = Self {
            request,
            model,
            init_image,
            noise_origin: None,
            model_hash: None,
            lora_hashes: Vec::new(),
            latent: None,
            served: None,
        };
        record.merge_served(backend, infotext, seed);
        record
    }

    /// Records that a server at `backend` made the image, merging what its
    /// infotext says over what was asked: the seed it used (a server may
    /// draw one), its model's name and hash.
    pub fn merge_served(&mut self, backend: &str, infotext: Option<String>, seed: Option<u64>) {
        let params = infotext.as_deref().and_then(|t| GenerationParams::parse_a1111(t).ok());
        if let Some(p) = &params {
            self.request.seed = p.seed;
            if !p.model.is_empty() {
                self.model = p.model.clone();
            }
            let hash = p.extra.iter().find(|(k, _)| k == "Model hash").map(|(_, v)| v.clone());
            self.model_hash = hash.or(self.model_hash.take());
        }
        if let Some(seed) = seed {
            self.request.seed = seed;
        }
        self.served = Some(ServedImage { backend: backend.to_owned(), infotext });
    }
}

/// The settings stored in the PNG at `path`: ours if present, else an
/// A1111-style `parameters` chunk; `Ok(None)` if it has neither.
pub fn read_image_record(path: &Path) -> Result<Option<ImageRecord>, FileError> {
    image_record_from_chunks(&read_text_chunks(path)?).map_err(|e| FileError::new(path, e))
}

/// The settings in a PNG's text chunks: ours if present, else an A1111-style
/// `parameters` chunk; `Ok(None)` if there are neither.
pub fn image_record_from_chunks(chunks: &[(String, String)]) -> Result<Option<ImageRecord>, FormatError> {
    if let Some((_, json)) = chunks.iter().find(|(k, _)| k == RECORD_KEY) {
        return serde_json::from_str(json)
            .map(Some)
            .map_err(|e| FormatError(format!("unreadable {RECORD_KEY} chunk: {e}")));
    }
    let Some((_, text)) = chunks.iter().find(|(k, _)| k == PARAMETERS_KEY) else {
        return Ok(None);
    };
    let params = GenerationParams::parse_a1111(text).map_err(|e| FormatError(e.to_string()))?;
    Ok(Some(ImageRecord::from_params(&params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::png_meta::encode_png;

    #[test]
    fn both_chunks_round_trip_and_another_tools_text_is_read() {
        let mut request = ImageRequest::new("a red heart, glossy", 42);
        request.negative = "blurry".into();
        request.sampler = SamplerKind::Ddim;
        request.variation = Some(VariationSeed { seed: 99, strength: 0.25 });
        let record = ImageRecord {
            request,
            model: "emoji-ldm".into(),
            init_image: Some("in.png".into()),
            noise_origin: None,
            model_hash: Some("6ce0161689".into()),
            lora_hashes: vec![("glow".into(), "0123456789ab".into())],
            latent: None,
            served: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        std::fs::write(&path, encode_png(&image::RgbImage::new(4, 4), &record.chunks()).unwrap()).unwrap();
        assert_eq!(read_image_record(&path).unwrap().unwrap(), record);
        let params = crate::io::sd_params::read_generation_params(&path).unwrap().unwrap();
        assert_eq!((params.steps, params.sampler.as_str(), params.seed), (20, "DDIM", 42));
        let extra = [
            ("Variation seed", "99"),
            ("Variation seed strength", "0.25"),
            ("Denoising strength", "0.75"),
            ("Model hash", "6ce0161689"),
            ("Lora hashes", "glow: 0123456789ab"),
        ];
        assert_eq!(params.extra, extra.map(|(k, v)| (k.to_owned(), v.to_owned())));

        let a1111 = "masterpiece, cat\nNegative prompt: dog\nSteps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 7, Size: 640x448, Model: sd15";
        let other = dir.path().join("b.png");
        let chunks = [(PARAMETERS_KEY.to_owned(), a1111.to_owned())];
        std::fs::write(&other, encode_png(&image::RgbImage::new(4, 4), &chunks).unwrap()).unwrap();
        let read = read_image_record(&other).unwrap().unwrap();
        assert_eq!((read.request.prompt.as_str(), read.request.negative.as_str()), ("masterpiece, cat", "dog"));
        assert_eq!((read.request.steps, read.request.guidance, read.request.seed), (30, 6.5, 7));
        assert_eq!((read.request.width, read.request.height, read.model.as_str()), (640, 448, "sd15"));
        assert_eq!(read.request.sampler, SamplerKind::DpmPp2mKarras, "A1111's older name");
        assert_eq!(read.request.variation, None);
        let varied = "cat\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 7, Size: 64x64, Variation seed: 123, Variation seed strength: 0.3";
        let chunks = [(PARAMETERS_KEY.to_owned(), varied.to_owned())];
        let read = image_record_from_chunks(&chunks).unwrap().unwrap();
        assert_eq!(read.request.variation, Some(VariationSeed { seed: 123, strength: 0.3 }));
        // A1111 1.9+ writes the schedule apart; a sampler we lack becomes Euler a.
        let newer = "cat\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 7, Size: 64x64";
        let unknown = "cat\nSteps: 30, Sampler: UniPC, CFG scale: 6.5, Seed: 7, Size: 64x64";
        for (text, want) in [(newer, SamplerKind::DpmPp2mKarras), (unknown, SamplerKind::EulerAncestral)] {
            let chunks = [(PARAMETERS_KEY.to_owned(), text.to_owned())];
            let read = image_record_from_chunks(&chunks).unwrap().unwrap();
            assert_eq!(read.request.sampler, want, "{text}");
        }
    }
}
