//! The DCGAN's training step and latent tricks on a tiny configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

mod common;

use candle_core::{Device, Tensor};
use latent_studio::gan::network::{GanConfig, bce_with_logits_mean};
use latent_studio::gan::train::{GanTrainer, TrainGanSpec};
use latent_studio::io::datasets::DatasetName;
use latent_studio::latent::interpolate::{seeded_latent, truncate};
use latent_studio::latent::model::LatentModel;

fn trainer(seed: u64) -> GanTrainer {
    let spec = TrainGanSpec { lr: 1e-3, ..TrainGanSpec::dcgan(DatasetName::Emoji, GanConfig::tiny(), 1, seed) };
    GanTrainer::new(spec, &Device::Cpu).unwrap()
}

/// Discriminator loss on fixed real and generated images, with targets 0.9 and 0.
fn d_loss(t: &GanTrainer, real: &Tensor, fake: &Tensor) -> f32 {
    let d = t.discriminator();
    let loss = (bce_with_logits_mean(&d.forward(real).unwrap(), 0.9).unwrap()
        + bce_with_logits_mean(&d.forward(fake).unwrap(), 0.0).unwrap())
    .unwrap();
    loss.to_scalar().unwrap()
}

fn g_loss(t: &GanTrainer, fake: &Tensor) -> f32 {
    bce_with_logits_mean(&t.discriminator().forward(fake).unwrap(), 1.0).unwrap().to_scalar().unwrap()
}

/// One adversarial step on a toy problem (real images: a bright square on
/// dark): the discriminator gets better at telling the old fakes from the
/// real images, and the generator's new fakes fool the updated discriminator
/// more than its old ones did.
#[test]
fn one_step_moves_both_networks_the_expected_way() {
    for seed in 0..3 {
        let mut t = trainer(seed);
        let cfg = GanConfig::tiny();
        let s = cfg.image_size;
        let square: Vec<f32> = (0..3 * s * s)
            .map(|i| {
                let (y, x) = ((i % (s * s)) / s, i % s);
                if (2..6).contains(&x) && (2..6).contains(&y) { 1.0 } else { -1.0 }
            })
            .collect();
        let real = Tensor::from_vec(square.repeat(8), (8, 3, s, s), &Device::Cpu).unwrap();
        let z = Tensor::randn(0f32, 1.0, (8, cfg.latent_dim), &Device::Cpu).unwrap();
        let old_fake = t.generator().forward_t(&z, true).unwrap().detach();
        let d_before = d_loss(&t, &real, &old_fake);
        let outputs_before: Vec<f32> =
            t.generator().forward_t(&z, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        t.train_step(&real, &z).unwrap();
        let d_after = d_loss(&t, &real, &old_fake);
        assert!(d_after < d_before, "seed {seed}: discriminator loss {d_before} → {d_after}");
        let new_fake = t.generator().forward_t(&z, true).unwrap();
        let (g_old, g_new) = (g_loss(&t, &old_fake), g_loss(&t, &new_fake));
        assert!(g_new < g_old, "seed {seed}: generator loss under the new discriminator {g_old} → {g_new}");
        let outputs_after: Vec<f32> =
            t.generator().forward_t(&z, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(outputs_before, outputs_after, "the generator's images changed");
    }
}

#[test]
fn checkpoints_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GanConfig::tiny();
    let mut set = latent_studio::io::datasets::ImageSet { side: cfg.image_size, channels: 3, ..Default::default() };
    let mut rng = latent_studio::train::rng::SeededRng::new(3);
    for i in 0..40 {
        set.pixels.extend(rng.normal_vec(3 * 64).into_iter().map(|v| (0.5 + 0.2 * v).clamp(0.0, 1.0)));
        set.labels.push(i % 2);
    }
    let spec = TrainGanSpec { batch_size: 8, ..TrainGanSpec::dcgan(DatasetName::Emoji, cfg, 2, 9) };
    let cancel = latent_studio::train::cancel::CancelToken::new();
    let mut straight = GanTrainer::new(spec.clone(), &Device::Cpu).unwrap();
    straight.train_epoch(&set, &mut |_| {}, &cancel).unwrap();
    straight.save_checkpoint(dir.path()).unwrap();
    straight.train_epoch(&set, &mut |_| {}, &cancel).unwrap();
    let mut resumed = GanTrainer::resume(dir.path(), 2, &Device::Cpu).unwrap();
    resumed.train_epoch(&set, &mut |_| {}, &cancel).unwrap();
    assert_eq!(straight.history()[1].d_loss, resumed.history()[1].d_loss);
    assert_eq!(straight.sample_grid().unwrap(), resumed.sample_grid().unwrap());
}

#[test]
fn truncation_zero_gives_the_mean_latents_image() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::write_tiny_gan(dir.path());
    let z = seeded_latent(4, model.latent_dim());
    let images = model.decode(&[truncate(&z, 0.0), vec![0.0; model.latent_dim()], truncate(&z, 1.0), z]).unwrap();
    assert_eq!(images[0], images[1]);
    assert_eq!(images[2], images[3]);
    assert_ne!(images[0], images[2]);
}
