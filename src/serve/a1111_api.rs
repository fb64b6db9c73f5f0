//! The A1111-compatible side of `serve`: `POST /sdapi/v1/txt2img` and
//! `img2img`, `GET /sdapi/v1/progress`, `POST /sdapi/v1/interrupt`, and the
//! lists a client reads first (`sd-models`, `samplers`, `loras`, `options`),
//! with A1111's field names and defaults. Every image parameter has a
//! limit; an init image is decoded under size limits (no decompression bomb).

use std::time::Duration;

use image::RgbImage;
use serde::Deserialize;
use serde_json::{Value, json};

use super::State;
use super::answer::{ApiError, client_gone};
use super::image_jobs::{ImageJob, ImagesDone};
use crate::io::base64_image::{decode_base64_image, encode_base64_png};
use crate::spec::image::{ImageRequest, SamplerKind, VariationSeed};
use crate::train::cancel::CancelToken;

/// What an image request may ask for.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    pub max_side: usize,
    pub max_steps: usize,
    pub max_images: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_side: 1024, max_steps: 150, max_images: 8 }
    }
}

#[derive(Deserialize, Default)]
struct OverrideSettings {
    sd_model_checkpoint: Option<String>,
}

/// A txt2img / img2img body (img2img adds the init image and strength).
#[derive(Deserialize)]
struct ImageBody {
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    negative_prompt: String,
    steps: Option<usize>,
    cfg_scale: Option<f64>,
    width: Option<usize>,
    height: Option<usize>,
    seed: Option<i64>,
    sampler_name: Option<String>,
    scheduler: Option<String>,
    batch_size: Option<usize>,
    n_iter: Option<usize>,
    subseed: Option<i64>,
    subseed_strength: Option<f64>,
    #[serde(default)]
    override_settings: Option<OverrideSettings>,
    #[serde(default)]
    init_images: Vec<String>,
    denoising_strength: Option<f64>,
}

/// `GET /sdapi/v1/sd-models`: the installed diffusion models.
pub fn sd_models(state: &State) -> Value {
    let models: Vec<Value> = state
        .rescan()
        .image
        .into_iter()
        .map(
            |id| json!({ "title": id, "model_name": id, "hash": null, "sha256": null, "filename": id, "config": null }),
        )
        .collect();
    Value::Array(models)
}

/// `GET /sdapi/v1/samplers`.
pub fn samplers() -> Value {
    let list: Vec<Value> = SamplerKind::ALL
        .iter()
        .map(|k| json!({ "name": k.a1111_name(), "aliases": [k.cli_name()], "options": {} }))
        .collect();
    Value::Array(list)
}

/// `GET /sdapi/v1/loras`: the LoRA files under the models folder's `loras/`.
pub fn loras(state: &State) -> Value {
    let names = state.lora_names();
    Value::Array(names.into_iter().map(|name| json!({ "name": name, "alias": name, "path": name })).collect())
}

/// `GET /sdapi/v1/progress`.
pub fn progress(state: &State) -> Value {
    let p = state.images.snapshot();
    let fraction = if p.active && p.steps > 0 && p.images > 0 {
        (p.image * p.steps + p.step) as f64 / (p.steps * p.images) as f64
    } else {
        0.0
    };
    let preview = p.preview.as_ref().and_then(|image| encode_base64_png(image, &[]).ok());
    json!({
        "progress": fraction,
        "eta_relative": 0.0,
        "state": {
            "skipped": false, "interrupted": false, "job": if p.active { "txt2img" } else { "" },
            "job_count": usize::from(p.active) + state.images.waiting(), "job_no": p.image,
            "sampling_step": p.step, "sampling_steps": p.steps,
        },
        "current_image": preview,
        "textinfo": null,
    })
}

/// `POST /sdapi/v1/txt2img` or `img2img`: waits for the images, then answers.
pub fn generate(state: &State, body: &[u8], img2img: bool, out: &std::net::TcpStream) -> Result<Value, ApiError> {
    let body: ImageBody =
        serde_json::from_slice(body).map_err(|e| ApiError::status(422, format!("the request body: {e}")))?;
    let (request, count) = request_of(&body, img2img, state.image_limits)?;
    let init = if img2img {
        let first =
            body.init_images.first().ok_or_else(|| ApiError::status(422, "img2img needs init_images".into()))?;
        Some(decode_init(first)?)
    } else {
        None
    };
    let model = match body.override_settings.as_ref().and_then(|o| o.sd_model_checkpoint.clone()) {
        Some(model) => model,
        None => state
            .current_image_model()
            .ok_or_else(|| ApiError::status(404, "no diffusion model is installed".into()))?,
    };
    if !state.knows(&model, |i| &i.image) {
        return Err(ApiError::status(404, format!("no checkpoint {model:?} here (see /sdapi/v1/sd-models)")));
    }
    let (done, receiver) = crossbeam_channel::bounded(1);
    let cancel = CancelToken::new();
    let job = ImageJob { model, request, init, count, done, cancel: cancel.clone() };
    state.images.submit(job).map_err(|_| ApiError::busy("the image queue is full"))?;
    let started = std::time::Instant::now();
    let result = loop {
        if started.elapsed() > state.limits.job_time {
            cancel.cancel();
        }
        match receiver.recv_timeout(Duration::from_secs(2)) {
            Ok(result) => break result,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if client_gone(out) => {
                cancel.cancel();
                return Err(ApiError::gone(std::io::ErrorKind::ConnectionAborted.into()));
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break Err("the image thread stopped".into()),
        }
    };
    let done = result.map_err(ApiError::failed)?;
    answer(&done)
}

/// The A1111 answer: base64 PNGs (with our metadata), and `info` as a JSON string.
fn answer(done: &ImagesDone) -> Result<Value, ApiError> {
    let mut images = Vec::new();
    let mut infotexts = Vec::new();
    for (image, record) in &done.images {
        images.push(encode_base64_png(image, &record.chunks()).map_err(|e| ApiError::failed(e.to_string()))?);
        infotexts.push(record.to_params().to_a1111());
    }
    let seeds: Vec<u64> = done.images.iter().map(|(_, r)| r.request.seed).collect();
    let info = json!({
        "seed": seeds.first(), "all_seeds": seeds, "infotexts": infotexts, "interrupted": done.interrupted,
    });
    Ok(json!({ "images": images, "parameters": {}, "info": info.to_string() }))
}

/// Our request from A1111's fields, within the limits.
fn request_of(body: &ImageBody, img2img: bool, limits: ImageLimits) -> Result<(ImageRequest, usize), ApiError> {
    let bad = |message: String| ApiError::status(422, message);
    let steps = body.steps.unwrap_or(20);
    if !(1..=limits.max_steps).contains(&steps) {
        return Err(bad(format!("steps must be between 1 and {}", limits.max_steps)));
    }
    let (width, height) = (body.width.unwrap_or(512), body.height.unwrap_or(512));
    for side in [width, height] {
        if !(8..=limits.max_side).contains(&side) || side % 8 != 0 {
            return Err(bad(format!("width and height must be multiples of 8 from 8 to {}", limits.max_side)));
        }
    }
    let count = body.batch_size.unwrap_or(1).max(1).saturating_mul(body.n_iter.unwrap_or(1).max(1));
    if count > limits.max_images {
        return Err(bad(format!("batch_size × n_iter must be at most {}", limits.max_images)));
    }
    let guidance = body.cfg_scale.unwrap_or(7.0);
    if !(0.0..=30.0).contains(&guidance) {
        return Err(bad("cfg_scale must be between 0 and 30".into()));
    }
    let strength = body.denoising_strength.unwrap_or(0.75);
    if img2img && !(strength > 0.0 && strength <= 1.0) {
        return Err(bad("denoising_strength must be in (0, 1]".into()));
    }
    let sampler = match &body.sampler_name {
        None => SamplerKind::EulerAncestral,
        Some(name) => {
            SamplerKind::from_infotext(name, body.scheduler.as_deref().filter(|s| !s.eq_ignore_ascii_case("automatic")))
                .ok_or_else(|| bad(format!("no sampler {name:?} here (see /sdapi/v1/samplers)")))?
        }
    };
    let seed = seed_of(body.seed);
    let variation = body
        .subseed_strength
        .filter(|s| *s > 0.0)
        .map(|strength| VariationSeed { seed: seed_of(body.subseed), strength: strength.min(1.0) });
    let request = ImageRequest {
        prompt: body.prompt.clone(),
        negative: body.negative_prompt.clone(),
        steps,
        sampler,
        guidance,
        width,
        height,
        seed,
        strength,
        variation,
    };
    Ok((request, count))
}

/// A1111's seed: -1 (or none) draws one.
fn seed_of(seed: Option<i64>) -> u64 {
    match seed {
        Some(s) if s >= 0 => s as u64,
        _ => {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            u64::from(nanos % 4_294_967_295)
        }
    }
}

/// An init image from base64 (or a `data:` URL), refused before decoding if
/// its header claims more than the limit.
fn decode_init(b64: &str) -> Result<RgbImage, ApiError> {
    let (image, _) = decode_base64_image(b64).map_err(|e| ApiError::status(422, format!("init_images[0]: {e}")))?;
    Ok(image)
}

/// Every image request body a client can send, checked (the fuzz target's body).
pub fn check_request(body: &[u8], img2img: bool) -> Result<ImageRequest, String> {
    let body: ImageBody = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let limits = ImageLimits::default();
    let (request, count) = request_of(&body, img2img, limits).map_err(|e| e.message)?;
    assert!(count <= limits.max_images && request.steps <= limits.max_steps);
    if let Some(first) = body.init_images.first() {
        decode_init(first).map_err(|e| e.message)?;
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: Value) -> ImageBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a1111_fields_and_limits() {
        let limits = ImageLimits::default();
        let (r, n) = request_of(
            &body(json!({"prompt": "cat", "steps": 4, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "seed": 5, "batch_size": 2})),
            false,
            limits,
        )
        .unwrap();
        assert_eq!((r.sampler, r.seed, r.steps, n), (SamplerKind::DpmPp2mKarras, 5, 4, 2));
        let too_many = request_of(&body(json!({"steps": 10000})), false, limits).unwrap_err();
        assert!(too_many.message.contains("steps must be between 1 and 150"));
        assert!(request_of(&body(json!({"width": 4096})), false, limits).is_err());
        assert!(request_of(&body(json!({"width": 500})), false, limits).is_err());
        assert!(request_of(&body(json!({"width": 0})), false, limits).is_err());
        assert!(request_of(&body(json!({"batch_size": 4, "n_iter": 4})), false, limits).is_err());
        assert!(request_of(&body(json!({"sampler_name": "Restart"})), false, limits).is_err());
        assert!(request_of(&body(json!({"denoising_strength": 0})), true, limits).is_err());
    }

    #[test]
    fn init_images_over_the_limit_are_refused_undecoded() {
        let big = RgbImage::new(crate::io::base64_image::MAX_SIDE + 1, 1);
        let b64 = encode_base64_png(&big, &[]).unwrap();
        assert!(decode_init(&b64).is_err());
        let ok = encode_base64_png(&RgbImage::new(8, 8), &[]).unwrap();
        assert_eq!(decode_init(&format!("data:image/png;base64,{ok}")).unwrap().dimensions(), (8, 8));
    }
}
