//! `train text …`: trains the character GPT with a progress bar, checkpoints
//! at every evaluation and exports a model folder at the end.

use anyhow::{Context, bail};
use clap::Args;

use super::train_args::{ModelNameArgs, ProgressLines, RunArgs};
use crate::io::text_corpus::{CharCorpus, CorpusName, TextSource};
use crate::nn::default_device;
use crate::text::gpt::GptConfig;
use crate::text::run::CharGptRun;
use crate::text::train::{TextTrainer, TrainTextSpec};
use crate::train::cancel::CancelToken;
use crate::train::driver::{RunPlan, drive};
use crate::train::export::ExportInfo;

/// Flags of `train text`.
#[derive(Args, Debug)]
pub struct TrainTextArgs {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    names: ModelNameArgs,
    /// A known corpus (fetch it with scripts/fetch-data.sh).
    #[arg(long, value_enum, conflicts_with = "data", required_unless_present = "data")]
    corpus: Option<CorpusName>,
    /// Your text: a .txt file or a folder of them (joined in name order).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Optimiser steps in all (with --resume: up to this many).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
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
}

/// Trains and exports.
pub fn run(a: TrainTextArgs, command: String) -> anyhow::Result<()> {
    a.run.refuse_existing_model()?;
    let out = &a.run.out;
    let source = match (a.corpus, &a.data) {
        (Some(name), None) => TextSource::Named(name),
        (None, Some(path)) => TextSource::Files(path.clone()),
        _ => bail!("give either --corpus NAME or --data FILE_OR_FOLDER"),
    };
    let text = source.read(&a.run.data_dir).map_err(anyhow::Error::msg)?;
    let corpus = CharCorpus::from_text(&text);
    let device = default_device();
    let checkpoint = out.join("checkpoint");
    let trainer = if a.run.resume {
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
            corpus: source.clone(),
            config,
            steps: a.steps,
            batch_size: a.batch_size,
            lr: a.lr,
            eval_every: a.eval_every,
            eval_windows: a.eval_windows,
            seed: a.run.seed,
        };
        TextTrainer::new(spec, corpus.vocab.clone(), &device)?
    };
    if trainer.alphabet() != corpus.vocab.as_slice() {
        bail!("the corpus's alphabet differs from the checkpoint's; was the data changed?");
    }
    eprintln!(
        "training {} on {} characters ({} held out, alphabet {}), steps {}..={}",
        out.display(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.vocab.len(),
        trainer.step() + 1,
        trainer.spec().steps
    );
    let label = match &source {
        TextSource::Named(name) => format!("{name:?}"),
        TextSource::Files(path) => path.file_stem().map_or_else(|| "text".into(), |s| s.to_string_lossy().into_owned()),
    };
    let (id, name) = a.names.resolve(out, "gpt", || format!("{label} characters GPT"));
    let plan = RunPlan::new(out, ExportInfo { id: &id, name: &name, command: &command });
    let mut progress = ProgressLines::new();
    drive(&mut CharGptRun { trainer, corpus }, &plan, &CancelToken::new(), &mut progress)?;
    eprintln!("wrote model {id} to {}", out.display());
    Ok(())
}
