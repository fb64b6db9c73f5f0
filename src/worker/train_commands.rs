//! The `latent-studio train …` command that makes the same run as a
//! request from the Train view, for the model card.

use std::path::Path;

use super::train_plan::DiffusionPlan;
use crate::diffusion::stages::DiffusionStart;
use crate::gan::train::TrainGanSpec;
use crate::text::train::TrainTextSpec;
use crate::vae::train::TrainVaeSpec;

pub(super) fn limit_flag(limit: Option<usize>) -> String {
    limit.map(|n| format!(" --limit {n}")).unwrap_or_default()
}

/// The `latent-studio train vae` command that makes the same run, for the model card.
pub(super) fn vae_command(spec: &TrainVaeSpec, out: &Path, limit: Option<usize>) -> String {
    let c = &spec.config;
    format!(
        "latent-studio train vae {} --latent-dim {} --hidden {} --base-channels {} --epochs {} \
         --batch-size {} --lr {} --beta {} --seed {} --out {}{}",
        spec.dataset.cli_flags(),
        c.latent_dim,
        c.hidden,
        c.base_channels,
        spec.epochs,
        spec.batch_size,
        spec.lr,
        spec.beta,
        spec.seed,
        out.display(),
        limit_flag(limit)
    )
}

/// The `latent-studio train gan` command that makes the same run, for the model card.
pub(super) fn gan_command(spec: &TrainGanSpec, out: &Path, limit: Option<usize>) -> String {
    let c = &spec.config;
    let from = spec.base.as_ref().map(|b| format!(" --from {}", b.display())).unwrap_or_default();
    format!(
        "latent-studio train gan {} --latent-dim {} --base-channels {} --epochs {} --batch-size {} \
         --lr {} --real-label {} --seed {}{from} --out {}{}",
        spec.dataset.cli_flags(),
        c.latent_dim,
        c.base_channels,
        spec.epochs,
        spec.batch_size,
        spec.lr,
        spec.real_label,
        spec.seed,
        out.display(),
        limit_flag(limit)
    )
}

/// The `latent-studio train text` command that makes the same run, for the model card.
pub(super) fn text_command(spec: &TrainTextSpec, out: &Path) -> String {
    let c = &spec.config;
    format!(
        "latent-studio train text {} --steps {} --layers {} --heads {} --width {} --context {} \
         --batch-size {} --lr {} --eval-every {} --eval-windows {} --seed {} --out {}",
        spec.corpus.cli_flag(),
        spec.steps,
        c.layers,
        c.heads,
        c.width,
        c.context,
        spec.batch_size,
        spec.lr,
        spec.eval_every,
        spec.eval_windows,
        spec.seed,
        out.display()
    )
}

/// The `latent-studio train diffusion` command of the U-Net stage, for the model card.
pub(super) fn diffusion_command(p: &DiffusionPlan, out: &Path, limit: Option<usize>) -> String {
    let s = &p.settings;
    let start = match &p.start {
        DiffusionStart::FineTune { base } => format!(" --from {}", base.display()),
        DiffusionStart::New { merges, max_len, width } => {
            format!(" --merges {merges} --max-len {max_len} --width {width}")
        }
        DiffusionStart::Resume => String::new(),
    };
    let ema = s.ema.map(|d| format!(" --ema {d}")).unwrap_or_default();
    format!(
        "latent-studio train diffusion {} --epochs {} --batch-size {} --lr {}{ema}{start} --sample-every {} \
         --seed {} --out {}{}",
        p.source.cli_flags(),
        s.epochs,
        s.batch_size,
        s.lr,
        s.sample_every,
        s.seed,
        out.display(),
        limit_flag(limit)
    )
}
