//! The shipped text-to-emoji model answers its prompts: "cat", "red heart"
//! and "smiling face" give images that are told apart by colour and layout
//! alone, red where the prompt says red and yellow faces where it says
//! smiling face.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use candle_core::Device;
use image::RgbImage;
use latent_studio::diffusion::pipeline::{DiffusionPipeline, ImageRequest};
use latent_studio::diffusion::schedulers::SamplerKind;
use latent_studio::train::cancel::CancelToken;

const PROMPTS: [&str; 3] = ["cat", "red heart", "smiling face"];
const SEEDS: [u64; 4] = [1, 2, 3, 4];

/// The image as an 8 × 8 grid of mean colours in [0, 1] (its coarse layout).
fn layout(image: &RgbImage) -> Vec<f64> {
    let (w, h) = image.dimensions();
    let (cw, ch) = (w / 8, h / 8);
    let mut cells = vec![0.0; 8 * 8 * 3];
    for (x, y, p) in image.enumerate_pixels() {
        let cell = ((y / ch).min(7) * 8 + (x / cw).min(7)) as usize;
        for c in 0..3 {
            cells[cell * 3 + c] += f64::from(p[c]) / 255.0 / f64::from(cw * ch);
        }
    }
    cells
}

/// Mean (R, G, B) over the whole image.
fn mean_colour(layout: &[f64]) -> [f64; 3] {
    let mut m = [0.0; 3];
    for cell in layout.chunks_exact(3) {
        (0..3).for_each(|c| m[c] += cell[c] / 64.0);
    }
    m
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum()
}

#[test]
fn the_shipped_emoji_model_tells_cat_red_heart_and_smiling_face_apart() {
    let pipeline = DiffusionPipeline::load(&common::shipped_models().join("emoji-ldm"), &Device::Cpu).unwrap();
    let cancel = CancelToken::new();
    // layouts[prompt][seed]
    let layouts: Vec<Vec<Vec<f64>>> = PROMPTS
        .iter()
        .map(|prompt| {
            SEEDS
                .iter()
                .map(|&seed| {
                    let request = ImageRequest {
                        steps: 20,
                        sampler: SamplerKind::Ddim,
                        guidance: 5.0,
                        width: 32,
                        height: 32,
                        ..ImageRequest::new(prompt, seed)
                    };
                    let done = pipeline.generate(&request, None, None, 0, &mut |_| {}, &cancel).unwrap().unwrap();
                    layout(&done.image)
                })
                .collect()
        })
        .collect();
    // Each image is nearer the mean layout of its own prompt's other images
    // than of the other prompts' images, for 11 of the 12 at least.
    let mut right = 0;
    for (p, images) in layouts.iter().enumerate() {
        for (s, image) in images.iter().enumerate() {
            let centroid = |q: usize| {
                let others: Vec<&Vec<f64>> =
                    layouts[q].iter().enumerate().filter(|(t, _)| q != p || *t != s).map(|(_, l)| l).collect();
                (0..image.len())
                    .map(|i| others.iter().map(|l| l[i]).sum::<f64>() / others.len() as f64)
                    .collect::<Vec<_>>()
            };
            let nearest = (0..PROMPTS.len())
                .min_by(|&a, &b| distance(image, &centroid(a)).total_cmp(&distance(image, &centroid(b))))
                .unwrap();
            right += usize::from(nearest == p);
        }
    }
    let colours: Vec<[f64; 3]> = layouts
        .iter()
        .map(|images| {
            let per: Vec<[f64; 3]> = images.iter().map(|l| mean_colour(l)).collect();
            [0, 1, 2].map(|c| per.iter().map(|m| m[c]).sum::<f64>() / per.len() as f64)
        })
        .collect();
    let shown = format!("{right}/12 nearest their own prompt; mean RGB per prompt {colours:.3?}");
    assert!(right >= 11, "{shown}");
    // Red heart is the reddest (R − G), smiling face the most yellow ((R + G)/2 − B).
    let redness = |m: &[f64; 3]| m[0] - m[1];
    let yellowness = |m: &[f64; 3]| (m[0] + m[1]) / 2.0 - m[2];
    assert!(redness(&colours[1]) > redness(&colours[0]).max(redness(&colours[2])), "{shown}");
    assert!(yellowness(&colours[2]) > yellowness(&colours[0]).max(yellowness(&colours[1])), "{shown}");
}
