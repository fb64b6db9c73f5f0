//! `bench pad`: how long the latent pad takes from a new cursor position to
//! pixels, as a drag across the pad asks for them one after another (text
//! states encoded once, as the image thread keeps them), and the same for a
//! concept slider.

use std::path::Path;
use std::time::Instant;

use clap::Args;

use crate::cli::bench::percentiles;
use crate::cli::model_args::{ModelArgs, SamplingArgs};
use crate::diffusion::latent_control::scene::LatentScene;
use crate::spec::image::SamplerKind;
use crate::spec::latent_control::{ConceptSlider, PadRecipe};
use crate::train::cancel::CancelToken;

/// Flags of `bench pad`.
#[derive(Args, Debug)]
pub struct BenchPadArgs {
    #[command(flatten)]
    source: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Cursor positions along the drag (each one rendered).
    #[arg(long, default_value_t = 60)]
    positions: usize,
    /// Also time the one-step preview through this tiny decoder (TAESD), as
    /// the pad shows it first for Stable Diffusion models.
    #[arg(long)]
    preview_decoder: Option<std::path::PathBuf>,
    /// With --preview-decoder absent: a TAESD-shaped decoder with random weights.
    #[arg(long, conflicts_with = "preview_decoder")]
    random_preview_decoder: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `bench pad`.
pub fn bench_pad(models_dir: &Path, args: BenchPadArgs) -> anyhow::Result<()> {
    let (pipeline, model) = args.source.load(models_dir)?;
    let base = args.sampling.request(&pipeline, "", 0, SamplerKind::Ddim);
    let mut pad = PadRecipe::corners([
        ("red heart".into(), 5),
        ("blue star".into(), 9),
        ("green tree".into(), 3),
        ("yellow sun".into(), 4),
    ]);
    let mut scene = LatentScene::default();
    let cancel = CancelToken::new();
    let random_decoder =
        std::env::temp_dir().join(format!("latent-studio-bench-taesd-{}.safetensors", std::process::id()));
    if args.random_preview_decoder {
        crate::diffusion::tiny_decoder::TinyDecoder::write_random(&random_decoder, 0)?;
    }
    let decoder = args.preview_decoder.clone().or(args.random_preview_decoder.then(|| random_decoder.clone()));
    let preview = match &decoder {
        Some(decoder) => {
            // A warm-up first: it encodes the four prompts and loads the decoder.
            let (mut times, warm_up) = (Vec::new(), 1);
            for i in 0..args.positions.max(2) + warm_up {
                let t = (i as f64 + 0.5) / args.positions.max(2) as f64;
                pad.at = (t, 1.0 - t);
                let started = Instant::now();
                let (request, noise, cond) = scene.pad_start(&pipeline, &base, &pad, &[])?;
                let quick = crate::spec::image::ImageRequest { steps: 1, ..request };
                let inputs = crate::diffusion::pipeline::GenerateInputs {
                    noise: Some(noise),
                    preview_decoder: Some(decoder.clone()),
                    preview_decoder_final: true,
                    ..Default::default()
                };
                pipeline.generate_conditioned(&quick, inputs, &cond, &mut |_| {}, &cancel)?;
                if i >= warm_up {
                    times.push(started.elapsed());
                }
            }
            let _ = std::fs::remove_file(&random_decoder);
            Some(percentiles(&mut times))
        }
        None => None,
    };
    let mut render = |pad: &PadRecipe, sliders: &[ConceptSlider]| -> anyhow::Result<std::time::Duration> {
        let started = Instant::now();
        let (request, noise, cond) = scene.pad_start(&pipeline, &base, pad, sliders)?;
        LatentScene::render(&pipeline, &request, noise, &cond, &mut |_| {}, &cancel)?;
        Ok(started.elapsed())
    };
    render(&pad, &[])?; // the first render encodes the four prompts
    let n = args.positions.max(2);
    let mut drag = Vec::with_capacity(n);
    for i in 0..n {
        // A diagonal sweep with a wobble, never exactly on a corner.
        let t = (i as f64 + 0.5) / n as f64;
        pad.at = (t, (0.5 + 0.4 * (t * 9.0).sin()).clamp(0.0, 1.0));
        drag.push(render(&pad, &[])?);
    }
    // A drag at 60 Hz against one render at a time, newest position first
    // (what the app does): each position's latency is until the first
    // image of it or a newer one is done.
    let frame = std::time::Duration::from_millis(16);
    let (mut clock, mut next, mut coalesced) = (std::time::Duration::ZERO, 0usize, Vec::with_capacity(n));
    while next < n {
        let arrived = |i: usize| frame * i as u32;
        clock = clock.max(arrived(next));
        let newest = (0..n).rev().find(|&i| arrived(i) <= clock).unwrap_or(next);
        let t = (newest as f64 + 0.5) / n as f64;
        pad.at = (t, (0.5 + 0.4 * (t * 9.0).sin()).clamp(0.0, 1.0));
        clock += render(&pad, &[])?;
        coalesced.extend((next..=newest).map(|i| clock - arrived(i)));
        next = newest + 1;
    }
    let slider = |v: f64| [ConceptSlider::new("happy", "sad", v)];
    render(&pad, &slider(0.1))?; // encodes the slider's two prompts
    let mut sliding = Vec::with_capacity(n);
    for i in 0..n {
        sliding.push(render(&pad, &slider(-1.0 + 2.0 * i as f64 / (n - 1) as f64))?);
    }
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let ((d50, d95), (s50, s95)) = (percentiles(&mut drag), percentiles(&mut sliding));
    let (c50, c95) = percentiles(&mut coalesced);
    let threads = rayon::current_num_threads();
    if args.json {
        let row = serde_json::json!({
            "model": model, "steps": base.steps, "sampler": base.sampler.cli_name(), "size": base.width,
            "threads": threads, "drag_ms": [ms(d50), ms(d95)], "slider_ms": [ms(s50), ms(s95)],
            "drag_60hz_ms": [ms(c50), ms(c95)],
        });
        println!("{row}");
        return Ok(());
    }
    println!(
        "bench pad --model {model} ({} steps {}, {}×{}, {threads} threads, {n} positions)\n",
        base.steps,
        base.sampler.a1111_name(),
        base.width,
        base.height
    );
    println!("| change | p50 ms | p95 ms |\n|---|---|---|");
    if let Some((p50, p95)) = preview {
        println!("| one-step preview through the tiny decoder | {:.1} | {:.1} |", ms(p50), ms(p95));
    }
    println!("| pad cursor moved | {:.1} | {:.1} |", ms(d50), ms(d95));
    println!("| concept slider moved | {:.1} | {:.1} |", ms(s50), ms(s95));
    println!("| drag at 60 Hz, newest position rendered next: change → pixels | {:.1} | {:.1} |", ms(c50), ms(c95));
    Ok(())
}
