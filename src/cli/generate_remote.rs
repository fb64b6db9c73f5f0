//! `generate --backend URL`: the same command on an A1111-compatible
//! server, written as local runs are (a PNG never overwritten, with the
//! settings as metadata, the server's infotext merged in).

use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};

use super::generate::GenerateArgs;
use crate::io::image_record::ImageRecord;
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::remote::a1111::{self, RemoteImageJob};
use crate::remote::pool::Pool;

/// Runs `generate` on `server`.
pub fn generate_remote(pool: &Pool, args: &GenerateArgs) -> anyhow::Result<()> {
    let local_only = [
        (args.source.model_dir.is_some() || args.source.model_file.is_some(), "--model-dir/--model-file"),
        (
            args.noise.is_some() || args.step_noise.is_some() || args.save_noise.is_some(),
            "--noise/--step-noise/--save-noise",
        ),
        (args.preview_decoder.is_some(), "--preview-decoder"),
        (!args.lora_dir.is_empty() || !args.embeddings_dir.is_empty(), "--lora-dir/--embeddings-dir"),
    ];
    if let Some((_, flags)) = local_only.iter().find(|(given, _)| *given) {
        bail!("{flags} work on this machine only; a backend uses its own files (--lora takes its LoRA names)");
    }
    let outs = outputs(&args.out, args.batch.max(1));
    if let Some(taken) = outs.iter().find(|p| p.exists()) {
        bail!("{} exists; the studio never overwrites (choose another --out)", taken.display());
    }
    let (request, init) = args.request_and_init(512)?;
    let loras: Vec<(String, f64)> = args.lora.iter().map(|(name, w)| (name.display().to_string(), *w)).collect();
    let job = RemoteImageJob {
        request: &request,
        model: args.source.model.as_deref(),
        init_image: init.as_ref(),
        batch: args.batch.max(1),
        loras: &loras,
    };
    let bar = ProgressBar::new(request.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("step [{bar:30}] {pos}/{len} on the backend ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let mut on_attempt = |url: &str, attempt: usize| {
        if attempt > 1 {
            bar.suspend(|| eprintln!("the previous server failed; generating again on {url}"));
        }
    };
    let ((images, _), url) = pool.run(job.model, &mut on_attempt, &mut |server| {
        a1111::generate(server, &job, &|| false, &mut |p| {
            if p.steps > 0 {
                bar.set_length(p.steps as u64);
                bar.set_position(p.step as u64);
            }
        })
    })?;
    bar.finish_and_clear();
    if images.is_empty() {
        bail!("{url} returned no image");
    }
    let model = args.source.model.clone().unwrap_or_else(|| "(the server's)".to_owned());
    for (i, (image, out)) in images.into_iter().zip(&outs).enumerate() {
        let request = crate::spec::image::ImageRequest { seed: request.seed + i as u64, ..request.clone() };
        let record =
            ImageRecord::from_server(request, model.clone(), args.init_name(), &url, image.infotext, image.seed);
        let png = encode_png(&image.image, &record.chunks()).map_err(anyhow::Error::msg)?;
        write_new_file(out, &png)?;
        eprintln!("wrote {} ({url}) in {:.1} s", out.display(), started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// OUT, then OUT-2.png, OUT-3.png, … for a batch.
fn outputs(out: &Path, batch: usize) -> Vec<PathBuf> {
    let stem = out.with_extension("");
    (0..batch)
        .map(|i| if i == 0 { out.to_owned() } else { PathBuf::from(format!("{}-{}.png", stem.display(), i + 1)) })
        .collect()
}
