//! Images on an AUTOMATIC1111-compatible server (`/sdapi/v1`: A1111, Forge,
//! stable-diffusion.cpp's `sd-server`, another studio's `serve`): the
//! catalogue (checkpoints, LoRAs, samplers), txt2img and img2img, the live
//! progress and preview from `/sdapi/v1/progress` while the image is made,
//! and `/sdapi/v1/interrupt` when the user cancels.

use std::time::Duration;

use image::RgbImage;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{RemoteError, RemoteServer};
use crate::io::base64_image::{decode_base64_image, encode_base64_png};
use crate::spec::image::ImageRequest;

/// How often progress is asked for while an image is made.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What a server offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// Checkpoint titles (what `sd_model_checkpoint` takes).
    pub models: Vec<String>,
    /// LoRA names (what `<lora:NAME:weight>` takes).
    pub loras: Vec<String>,
    /// Sampler names.
    pub samplers: Vec<String>,
}

/// Lists the server's checkpoints, LoRAs and samplers (a server without
/// a LoRA or sampler list gives empty ones).
pub fn catalogue(server: &RemoteServer) -> Result<Catalogue, RemoteError> {
    #[derive(Deserialize)]
    struct Model {
        title: String,
    }
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    let models: Vec<Model> = server.get_json("/sdapi/v1/sd-models")?;
    let optional = |path: &str| match server.get_json::<Vec<Named>>(path) {
        Ok(list) => Ok(list.into_iter().map(|n| n.name).collect()),
        Err(RemoteError::Status { status: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    Ok(Catalogue {
        models: models.into_iter().map(|m| m.title).collect(),
        loras: optional("/sdapi/v1/loras")?,
        samplers: optional("/sdapi/v1/samplers")?,
    })
}

/// One txt2img or img2img call.
#[derive(Clone, Debug)]
pub struct RemoteImageJob<'a> {
    pub request: &'a ImageRequest,
    /// The checkpoint to use (`override_settings.sd_model_checkpoint`); `None`: the server's current one.
    pub model: Option<&'a str>,
    /// img2img: the image to start from (`request.strength` is the denoising strength).
    pub init_image: Option<&'a RgbImage>,
    /// Images in the batch (seeds `seed`, `seed + 1`, …).
    pub batch: usize,
    /// LoRAs by the server's names, with weights (as `<lora:NAME:W>` in the prompt).
    pub loras: &'a [(String, f64)],
}

/// One image the server made.
#[derive(Clone, Debug)]
pub struct RemoteImage {
    pub image: RgbImage,
    /// The server's infotext for it (from its `info`, or its PNG's `parameters`).
    pub infotext: Option<String>,
    /// The seed it says it used.
    pub seed: Option<u64>,
}

/// The server's progress while it works.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// 0–1.
    pub fraction: f32,
    pub step: usize,
    pub steps: usize,
    /// The image as it stands, when the server sends one.
    pub preview: Option<RgbImage>,
}

/// The request body for `job` (txt2img, or img2img with an init image).
pub fn request_body(job: &RemoteImageJob) -> Result<Value, RemoteError> {
    let r = job.request;
    let (sampler, schedule) = r.sampler.infotext();
    let tags: String = job.loras.iter().map(|(name, weight)| format!(" <lora:{name}:{weight}>")).collect();
    let mut body = json!({
        "prompt": format!("{}{tags}", r.prompt),
        "negative_prompt": r.negative,
        "steps": r.steps,
        "cfg_scale": r.guidance,
        "width": r.width,
        "height": r.height,
        "seed": r.seed,
        "sampler_name": sampler,
        "batch_size": job.batch.max(1),
        "n_iter": 1,
        "send_images": true,
        "save_images": false,
    });
    if let Some(schedule) = schedule {
        body["scheduler"] = json!(schedule);
    }
    if let Some(variation) = r.variation {
        body["subseed"] = json!(variation.seed);
        body["subseed_strength"] = json!(variation.strength);
    }
    if let Some(model) = job.model {
        body["override_settings"] = json!({ "sd_model_checkpoint": model });
        body["override_settings_restore_afterwards"] = json!(true);
    }
    if let Some(init) = job.init_image {
        let png = encode_base64_png(init, &[]).map_err(|e| RemoteError::Invalid(e.to_string()))?;
        body["init_images"] = json!([png]);
        body["denoising_strength"] = json!(r.strength);
        body["resize_mode"] = json!(0);
    }
    Ok(body)
}

/// Makes the images of `job`, reporting the server's progress every half
/// second; when `cancel` turns true the server is told to interrupt, and the
/// images it returns then (partly denoised) come back with `true`.
pub fn generate(
    server: &RemoteServer,
    job: &RemoteImageJob,
    cancel: &(dyn Fn() -> bool + Sync),
    on_progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<RemoteImage>, bool), RemoteError> {
    let body = request_body(job)?;
    let path = if job.init_image.is_some() { "/sdapi/v1/img2img" } else { "/sdapi/v1/txt2img" };
    let mut interrupted = false;
    let answer = std::thread::scope(|scope| {
        let call = scope.spawn(|| server.post_json::<Value>(path, &body));
        let mut polling = true;
        while !call.is_finished() {
            std::thread::sleep(PROGRESS_EVERY);
            if cancel() && !interrupted {
                interrupted = true;
                let _ = server.post_json::<Value>("/sdapi/v1/interrupt", &json!({}));
            }
            if polling && !call.is_finished() {
                match progress(server) {
                    Ok(p) => on_progress(p),
                    // A server without progress (sd-server) is simply waited for.
                    Err(_) => polling = false,
                }
            }
        }
        call.join().unwrap_or_else(|_| Err(RemoteError::Invalid("the request thread failed".into())))
    })?;
    Ok((images_of(server, path, &answer)?, interrupted))
}

/// `GET /sdapi/v1/progress`.
pub fn progress(server: &RemoteServer) -> Result<Progress, RemoteError> {
    let path = "/sdapi/v1/progress?skip_current_image=false";
    let answer: Value = server.get_json(path)?;
    progress_of(&answer).map_err(|e| server.bad_answer(path, &e))
}

/// A `/sdapi/v1/progress` answer read (fields a server leaves out count as 0).
pub fn progress_of(answer: &Value) -> Result<Progress, String> {
    let count = |key: &str| answer.pointer(&format!("/state/{key}")).and_then(Value::as_u64).unwrap_or(0) as usize;
    let preview = match answer.get("current_image").and_then(Value::as_str) {
        Some(b64) if !b64.is_empty() => Some(decode_base64_image(b64)?.0),
        _ => None,
    };
    Ok(Progress {
        fraction: answer.get("progress").and_then(Value::as_f64).unwrap_or(0.0) as f32,
        step: count("sampling_step"),
        steps: count("sampling_steps"),
        preview,
    })
}

/// The images of a txt2img/img2img answer, each with its infotext and seed.
pub fn images_of(server: &RemoteServer, path: &str, answer: &Value) -> Result<Vec<RemoteImage>, RemoteError> {
    let bad = |detail: &str| server.bad_answer(path, detail);
    let images = answer.get("images").and_then(Value::as_array).ok_or_else(|| bad("no images list"))?;
    // A1111 puts a JSON object in a string; sd-server leaves it empty.
    let info: Value =
        answer.get("info").and_then(Value::as_str).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let infotexts = info.get("infotexts").and_then(Value::as_array);
    let seeds = info.get("all_seeds").and_then(Value::as_array);
    images
        .iter()
        .enumerate()
        .map(|(i, b64)| {
            let b64 = b64.as_str().ok_or_else(|| bad("an image that is not a string"))?;
            let (image, chunks) = decode_base64_image(b64).map_err(|e| bad(&format!("images[{i}]: {e}")))?;
            let png_parameters = chunks.into_iter().find(|(k, _)| k == "parameters").map(|(_, v)| v);
            let infotext = infotexts
                .and_then(|t| t.get(i))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(png_parameters)
                .filter(|t| !t.trim().is_empty());
            let seed = seeds.and_then(|s| s.get(i)).and_then(Value::as_u64);
            Ok(RemoteImage { image, infotext, seed })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::image::{SamplerKind, VariationSeed};

    #[test]
    fn bodies_use_a1111s_names() {
        let request = ImageRequest {
            sampler: SamplerKind::DpmPp2mKarras,
            variation: Some(VariationSeed { seed: 9, strength: 0.25 }),
            ..ImageRequest::new("a cat", 42)
        };
        let loras = [("film".to_owned(), 0.5)];
        let job = RemoteImageJob { request: &request, model: Some("sd15"), init_image: None, batch: 2, loras: &loras };
        let body = request_body(&job).unwrap();
        assert_eq!(body["prompt"], "a cat <lora:film:0.5>");
        assert_eq!((body["sampler_name"].as_str(), body["scheduler"].as_str()), (Some("DPM++ 2M"), Some("Karras")));
        assert_eq!((body["seed"].as_u64(), body["batch_size"].as_u64()), (Some(42), Some(2)));
        assert_eq!((body["subseed"].as_u64(), body["subseed_strength"].as_f64()), (Some(9), Some(0.25)));
        assert_eq!(body["override_settings"]["sd_model_checkpoint"], "sd15");
        assert!(body.get("init_images").is_none());
        let init = RgbImage::new(8, 8);
        let body = request_body(&RemoteImageJob { init_image: Some(&init), ..job }).unwrap();
        assert_eq!(body["denoising_strength"], 0.75);
        assert!(decode_base64_image(body["init_images"][0].as_str().unwrap()).is_ok());
    }

    #[test]
    fn answers_of_both_servers() {
        let server = RemoteServer::new("http://127.0.0.1:1", None).unwrap();
        let png = encode_base64_png(&RgbImage::new(4, 4), &[("parameters".into(), "a cat\nSteps: 2".into())]).unwrap();
        let a1111 =
            json!({ "images": [png], "info": json!({"infotexts": ["from info"], "all_seeds": [7]}).to_string() });
        let got = images_of(&server, "/p", &a1111).unwrap();
        assert_eq!((got[0].infotext.as_deref(), got[0].seed), (Some("from info"), Some(7)));
        let sd_cpp = json!({ "images": [png], "info": "" });
        let got = images_of(&server, "/p", &sd_cpp).unwrap();
        assert_eq!((got[0].infotext.as_deref(), got[0].seed), (Some("a cat\nSteps: 2"), None));
        let err = images_of(&server, "/p", &json!({ "images": ["not base64!"] })).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}
