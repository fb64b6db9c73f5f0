//! `pad` (one image from the latent pad at a cursor position, or again
//! from a PNG it made) and `travel` (an animation through keyframes), both
//! with concept sliders and `generate`'s sampling flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use crate::cli::model_args::{ModelArgs, SamplingArgs};
use image::RgbImage;

use crate::diffusion::latent_control::scene::LatentScene;
use crate::diffusion::latent_control::travel::{encode_travel, render_travel, travel_record};
use crate::diffusion::pipeline::{Generated, ImageRequest};
use crate::io::image_record::{ImageRecord, read_image_record};
use crate::io::output::write_new_file;
use crate::io::png_meta::encode_png;
use crate::spec::image::SamplerKind;
use crate::spec::latent_control::{
    AnimationFormat, ConceptSlider, Keyframe, LatentRecipe, MAX_POINTS, PadPoint, PadRecipe, TravelPlan,
};
use crate::train::cancel::CancelToken;

/// Flags of `pad`.
#[derive(Args, Debug)]
pub struct PadArgs {
    #[command(flatten)]
    source: ModelArgs,
    /// A point of the pad, "PROMPT@SEED@X,Y" with X and Y in [0, 1]; 1 to 8 of them.
    #[arg(long = "point", value_parser = parse_point)]
    points: Vec<PadPoint>,
    /// The cursor, "X,Y" (default: the recorded one with --from, else the middle).
    #[arg(long, value_parser = parse_xy)]
    at: Option<(f64, f64)>,
    /// A concept slider, "POSITIVE/NEGATIVE=VALUE"; repeatable.
    #[arg(long = "concept", value_parser = parse_concept)]
    concepts: Vec<ConceptSlider>,
    /// Offsets of the noise along the fixed noise directions, in standard
    /// deviations, comma-separated ("1.5,0,-2"; at most 4).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    noise_directions: Vec<f64>,
    /// Make the image a PNG from `pad` records again (its points, sliders,
    /// seeds and sampling settings); --at moves its cursor.
    #[arg(long, conflicts_with = "points")]
    from: Option<PathBuf>,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The PNG to write (never overwritten).
    #[arg(long)]
    out: PathBuf,
}

/// Flags of `travel`.
#[derive(Args, Debug)]
pub struct TravelArgs {
    #[command(flatten)]
    source: ModelArgs,
    /// A keyframe, "PROMPT@SEED" or "PROMPT@SEED@V1,V2…" with the concept
    /// sliders' values there; at least two.
    #[arg(long = "keyframe", value_parser = parse_keyframe, required = true)]
    keyframes: Vec<Keyframe>,
    /// Frames in the whole animation, the keyframes included.
    #[arg(long, default_value_t = 16)]
    frames: usize,
    /// A concept slider, "POSITIVE/NEGATIVE=VALUE" (the value where a keyframe gives none); repeatable.
    #[arg(long = "concept", value_parser = parse_concept)]
    concepts: Vec<ConceptSlider>,
    /// Frames per second.
    #[arg(long, default_value_t = 8.0)]
    fps: f64,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The animation to write, .gif or .apng/.png (never overwritten).
    #[arg(long)]
    out: PathBuf,
}

/// "A@B@C" → ("A", "B", "C") from the right, so prompts may hold '@'.
fn split_tail(s: &str, parts: usize) -> Option<Vec<&str>> {
    let mut fields: Vec<&str> = s.rsplitn(parts, '@').collect();
    fields.reverse();
    (fields.len() == parts && !fields[0].trim().is_empty()).then_some(fields)
}

fn parse_xy(s: &str) -> Result<(f64, f64), String> {
    let (x, y) = s.split_once(',').ok_or_else(|| format!("{s:?} is not X,Y"))?;
    let number = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    number(x).zip(number(y)).ok_or_else(|| format!("{s:?} is not two numbers X,Y"))
}

fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("{s:?} is not a seed (a whole number)"))
}

fn parse_point(s: &str) -> Result<PadPoint, String> {
    let fields = split_tail(s, 3).ok_or_else(|| format!("{s:?} is not PROMPT@SEED@X,Y"))?;
    let (x, y) = parse_xy(fields[2])?;
    Ok(PadPoint { prompt: fields[0].trim().to_owned(), seed: parse_seed(fields[1])?, x, y })
}

fn parse_keyframe(s: &str) -> Result<Keyframe, String> {
    let with_values = split_tail(s, 3).filter(|f| f[2].split(',').all(|v| v.trim().parse::<f64>().is_ok()));
    if let Some(fields) = with_values.filter(|f| parse_seed(f[1]).is_ok()) {
        let concepts = fields[2].split(',').filter_map(|v| v.trim().parse().ok()).collect();
        return Ok(Keyframe { prompt: fields[0].trim().to_owned(), seed: parse_seed(fields[1])?, concepts });
    }
    let fields = split_tail(s, 2).ok_or_else(|| format!("{s:?} is not PROMPT@SEED"))?;
    Ok(Keyframe { prompt: fields[0].trim().to_owned(), seed: parse_seed(fields[1])?, concepts: Vec::new() })
}

fn parse_concept(s: &str) -> Result<ConceptSlider, String> {
    let (pair, value) = s.rsplit_once('=').unwrap_or((s, "0"));
    let (positive, negative) = pair.split_once('/').ok_or_else(|| format!("{s:?} is not POSITIVE/NEGATIVE=VALUE"))?;
    let value = value.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    let value = value.ok_or_else(|| format!("{s:?}: the value after '=' is not a number"))?;
    Ok(ConceptSlider { range: value.abs().max(1.0), ..ConceptSlider::new(positive.trim(), negative.trim(), value) })
}

/// Refuses an existing output before any work.
fn fresh(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        bail!("{} exists; the studio never overwrites (choose another --out)", out.display());
    }
    Ok(())
}

/// The PNG of one latent-control image with its record.
fn png_with_record(
    generated: &Generated,
    request: ImageRequest,
    model: &str,
    latent: LatentRecipe,
) -> anyhow::Result<Vec<u8>> {
    let record = ImageRecord::from_latent(request, model.to_owned(), latent);
    encode_png(&generated.image, &record.chunks()).map_err(anyhow::Error::msg)
}

/// Runs `pad`.
pub fn pad(models_dir: &Path, args: PadArgs) -> anyhow::Result<()> {
    fresh(&args.out)?;
    let (pipeline, model) = args.source.load(models_dir)?;
    let (base, mut latent) = match &args.from {
        Some(path) => {
            let record = read_image_record(path)?.with_context(|| format!("{} holds no settings", path.display()))?;
            let mut latent = record.latent.unwrap_or_default();
            if latent.pad.is_none() {
                bail!("{} was not made with the latent pad", path.display())
            }
            if !args.concepts.is_empty() {
                latent.concepts = args.concepts.clone();
            }
            if !args.noise_directions.is_empty() {
                latent.noise_directions = args.noise_directions.clone();
            }
            (record.request, latent)
        }
        None => {
            if args.points.is_empty() || args.points.len() > MAX_POINTS {
                bail!("give 1 to {MAX_POINTS} --point PROMPT@SEED@X,Y ({} given)", args.points.len());
            }
            let base = args.sampling.request(&pipeline, "", 0, SamplerKind::EulerAncestral);
            let latent = LatentRecipe {
                pad: Some(PadRecipe { points: args.points.clone(), at: (0.5, 0.5) }),
                concepts: args.concepts.clone(),
                travel: None,
                noise_directions: args.noise_directions.clone(),
            };
            (base, latent)
        }
    };
    if let (Some(at), Some(pad)) = (args.at, latent.pad.as_mut()) {
        pad.at = at;
    }
    let (request, noise, cond) = LatentScene::default().recipe_start(&pipeline, &base, &latent)?;
    let Some(generated) = LatentScene::render(&pipeline, &request, noise, &cond, &mut |_| {}, &CancelToken::new())?
    else {
        bail!("cancelled")
    };
    write_new_file(&args.out, &png_with_record(&generated, request, &model, latent)?)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Runs `travel`.
pub fn travel(models_dir: &Path, args: TravelArgs) -> anyhow::Result<()> {
    fresh(&args.out)?;
    let Some(format) = AnimationFormat::from_path(&args.out) else {
        bail!("{}: write a .gif or an .apng/.png", args.out.display())
    };
    let plan = TravelPlan { keyframes: args.keyframes, concepts: args.concepts, frames: args.frames, fps: args.fps };
    plan.validate().map_err(anyhow::Error::msg)?;
    let (pipeline, model) = args.source.load(models_dir)?;
    let base = args.sampling.request(&pipeline, "", 0, SamplerKind::Ddim);
    let mut on_frame = |index: usize, _: &RgbImage| eprint!("\rframe {}/{}", index + 1, plan.frames);
    let frames =
        render_travel(&pipeline, &mut LatentScene::default(), &base, &plan, &mut on_frame, &CancelToken::new())?
            .context("cancelled")?;
    eprintln!();
    let bytes = encode_travel(&frames, &plan, &travel_record(&plan, &base, model), format)?;
    write_new_file(&args.out, &bytes)?;
    eprintln!("wrote {} ({} frames)", args.out.display(), frames.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_at_signs_in_prompts() {
        let p = parse_point("a cat @ home@42@0.25,1").unwrap();
        assert_eq!((p.prompt.as_str(), p.seed, p.x, p.y), ("a cat @ home", 42, 0.25, 1.0));
        assert!(parse_point("cat@x@0,0").is_err());
        assert!(parse_point("cat@1").is_err());
        let k = parse_keyframe("sun@7").unwrap();
        assert_eq!((k.prompt.as_str(), k.seed, k.concepts.len()), ("sun", 7, 0));
        let k = parse_keyframe("sun@7@0.5,-1").unwrap();
        assert_eq!(k.concepts, [0.5, -1.0]);
        let c = parse_concept("happy/sad=-0.5").unwrap();
        assert_eq!((c.positive.as_str(), c.negative.as_str(), c.value), ("happy", "sad", -0.5));
        assert!(parse_concept("happy=1").is_err());
        assert!(parse_xy("1;2").is_err());
    }
}
