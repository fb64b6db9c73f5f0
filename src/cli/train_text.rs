//! `train text …`: trains the character GPT with a progress bar, checkpoints
//! at every evaluation and exports a model folder at the end.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::io::manifest::MANIFEST_FILE;
use crate::io::text_corpus::{CharCorpus, CorpusName, read_corpus};
use crate::nn::default_device;
use crate::text::export::export_char_gpt;
use crate::text::gpt::GptConfig;
use crate::text::train::{TextTrainer, TrainTextSpec};
use crate::train::export::ExportInfo;

/// Flags of `train text`.
#[derive(Args, Debug)]
pub struct TrainTextArgs {
    /// Training text (fetch it with scripts/fetch-data.sh).
    #[arg(long, value_enum)]
    corpus: CorpusName,
    /// Optimiser steps in all (with --resume: up to this many).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Model folder to write (weights, manifest, card); checkpoints go to OUT/checkpoint.
    #[arg(long)]
    out: PathBuf,
    /// Model id (default: the folder name).
    #[arg(long)]
    id: Option<String>,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    layers: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Width of the residual stream.
    #[arg(long, default_value_t = 192)]
    width: usize,
    /// Context length in characters.
    #[arg(long, default_value_t = 128)]
    context: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Peak AdamW learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Steps between evaluations and checkpoints.
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Held-out windows per evaluation.
    #[arg(long, default_value_t = 128)]
    eval_windows: usize,
    /// Seed of initialisation and batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from OUT/checkpoint.
    #[arg(long)]
    resume: bool,
    /// Where scripts/fetch-data.sh put the data.
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
}

/// Trains and exports.
pub fn run(a: TrainTextArgs, command: String) -> anyhow::Result<()> {
    if !a.resume && a.out.join(MANIFEST_FILE).exists() {
        bail!(
            "{} already holds a model; choose another --out (models are never overwritten) or add --resume",
            a.out.display()
        );
    }
    let text = read_corpus(&a.data_dir, a.corpus).map_err(anyhow::Error::msg)?;
    let corpus = CharCorpus::from_text(&text);
    let device = default_device();
    let checkpoint = a.out.join("checkpoint");
    let mut trainer = if a.resume {
        TextTrainer::resume(&checkpoint, a.steps, &device).context("cannot resume")?
    } else {
        let config = GptConfig {
            vocab: corpus.vocab.len(),
            context: a.context,
            layers: a.layers,
            heads: a.heads,
            width: a.width,
        };
        config.validate().map_err(anyhow::Error::msg)?;
        let spec = TrainTextSpec {
            corpus: a.corpus,
            config,
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            eval_every: a.eval_every,
            eval_windows: a.eval_windows,
            seed: a.seed,
        };
        TextTrainer::new(spec, corpus.vocab.clone(), &device)?
    };
    if trainer.alphabet() != corpus.vocab.as_slice() {
        bail!("the corpus's alphabet differs from the checkpoint's; was the data changed?");
    }
    eprintln!(
        "training {} on {} characters ({} held out, alphabet {}), steps {}..={}",
        a.out.display(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.vocab.len(),
        trainer.step() + 1,
        trainer.spec().steps
    );
    while trainer.step() < trainer.spec().steps {
        let first = trainer.step();
        let chunk = trainer.spec().eval_every.min(trainer.spec().steps - first);
        let bar = ProgressBar::new(chunk as u64);
        bar.set_style(
            ProgressStyle::with_template("steps {prefix} [{bar:30}] {pos}/{len}, loss {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}–{}", first + 1, first + chunk));
        let report = trainer.train_until_eval(&corpus, &mut |step, loss| {
            bar.set_position((step - first) as u64);
            bar.set_message(format!("{loss:.3}"));
            true
        })?;
        bar.finish_and_clear();
        eprintln!(
            "step {}: train {:.3}, held-out {:.3} nats/character, {:.1} s",
            report.step, report.train_loss, report.val_loss, report.seconds
        );
        trainer.save_checkpoint(&checkpoint)?;
    }
    let folder = a.out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "gpt".into());
    let id = a.id.unwrap_or(folder);
    let name = a.name.unwrap_or_else(|| format!("{:?} characters GPT", a.corpus));
    export_char_gpt(&trainer, &a.out, &ExportInfo { id: &id, name: &name, command: &command })?;
    eprintln!("wrote model {id} to {}", a.out.display());
    Ok(())
}
