//! The `config.json` files of a diffusers folder: U-Net, autoencoder, CLIP
//! text encoder and scheduler, each parsed and checked as loading does, and
//! the schedule and samplers built from the scheduler's.
#![no_main]

use latent_studio::diffusion::autoencoder::AutoencoderConfig;
use latent_studio::diffusion::clip_text::ClipTextConfig;
use latent_studio::diffusion::schedulers::{SamplerKind, SchedulerConfig, build_sampler};
use latent_studio::diffusion::unet_config::UnetConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&steps, json)) = data.split_first() else { return };
    if let Ok(unet) = serde_json::from_slice::<UnetConfig>(json) {
        let _ = unet.plan();
        let _ = unet.text_time();
        let _ = unet.to_candle();
    }
    if let Ok(vae) = serde_json::from_slice::<AutoencoderConfig>(json) {
        if vae.validate().is_ok() {
            let _ = vae.downscale();
        }
    }
    if let Ok(clip) = serde_json::from_slice::<ClipTextConfig>(json) {
        let _ = clip.validate();
    }
    if let Ok(scheduler) = serde_json::from_slice::<SchedulerConfig>(json) {
        let _ = scheduler.betas();
        let _ = scheduler.alphas_cumprod();
        let _ = scheduler.prediction();
        let _ = scheduler.timesteps(usize::from(steps));
        for kind in SamplerKind::ALL {
            let _ = build_sampler(kind, &scheduler, usize::from(steps));
        }
    }
});
