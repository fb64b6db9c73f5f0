//! Training loop for the character GPT: random windows of the corpus, AdamW
//! with warm-up and cosine decay, held-out loss (nats per character) at every
//! evaluation, checkpoints that resume exactly.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::io::text_corpus::{CharCorpus, TextSource};
use crate::text::gpt::{Gpt, GptConfig};
use crate::train::adam::{Adam, AdamConfig};
use crate::train::checkpoint::{CheckpointState, load_checkpoint_tensors, read_checkpoint_state, save_checkpoint};
use crate::train::error::TrainError;
use crate::train::rng::SeededRng;

/// What to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainTextSpec {
    /// Corpus (recorded in the manifest).
    pub corpus: TextSource,
    /// Network shape (its vocab is the corpus alphabet's size).
    pub config: GptConfig,
    /// Optimiser steps in all.
    pub steps: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// Steps between evaluations (and checkpoints).
    pub eval_every: usize,
    /// Held-out windows per evaluation.
    pub eval_windows: usize,
    /// Seed of initialisation and batch sampling.
    pub seed: u64,
}

/// Losses at one evaluation (nats per character).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Optimiser steps done.
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    /// Held-out loss.
    pub val_loss: f64,
    /// Seconds of training since the previous evaluation.
    pub seconds: f64,
}

impl crate::train::report::Reported for EvalReport {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("held-out", self.val_loss)]
    }
    fn line(&self) -> String {
        format!(
            "step {}: train {:.3}, held-out {:.3} nats/character, {:.1} s",
            self.step, self.train_loss, self.val_loss, self.seconds
        )
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn epoch(&self) -> usize {
        self.step
    }
}

/// How far a character-GPT run got: its alphabet and optimiser steps.
#[derive(Serialize, Deserialize)]
struct TextProgress {
    alphabet: String,
    step: usize,
}

/// What a checkpoint of this trainer holds beside its tensors.
type TextCheckpoint = CheckpointState<TrainTextSpec, EvalReport, TextProgress>;

/// A training run in progress.
pub struct TextTrainer {
    varmap: VarMap,
    gpt: Gpt,
    opt: Adam,
    spec: TrainTextSpec,
    alphabet: Vec<char>,
    step: usize,
    history: Vec<EvalReport>,
    device: Device,
}

impl TextTrainer {
    /// A fresh run over a corpus with `alphabet`.
    pub fn new(spec: TrainTextSpec, alphabet: Vec<char>, device: &Device) -> Result<Self, TrainError> {
        if spec.config.vocab != alphabet.len() {
            return Err(TrainError::Invalid(format!(
                "the network has {} tokens, the alphabet {}",
                spec.config.vocab,
                alphabet.len()
            )));
        }
        let varmap = VarMap::new();
        let gpt = Gpt::new(&spec.config, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        crate::train::init::reseed_parameters(&varmap, spec.seed)?;
        let vars = crate::train::init::named_vars(&varmap);
        let opt = Adam::new(vars, AdamConfig { lr: spec.lr, weight_decay: 0.01, ..Default::default() })?;
        Ok(Self { varmap, gpt, opt, spec, alphabet, step: 0, history: Vec::new(), device: device.clone() })
    }

    /// Continues from a checkpoint; `steps` may raise the planned total.
    pub fn resume(dir: &Path, steps: usize, device: &Device) -> Result<Self, TrainError> {
        let (state, dir): (TextCheckpoint, _) = read_checkpoint_state(dir)?;
        let mut spec = state.spec;
        spec.steps = steps.max(state.progress.step);
        let mut trainer = Self::new(spec, state.progress.alphabet.chars().collect(), device)?;
        load_checkpoint_tensors(&dir, &mut trainer.varmap, &mut [(&mut trainer.opt, state.progress.step)], device)?;
        trainer.step = state.progress.step;
        trainer.history = state.history;
        Ok(trainer)
    }

    /// Writes weights, optimiser moments, step and history into `dir` (replaced whole).
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let state = TextCheckpoint {
            spec: self.spec.clone(),
            progress: TextProgress { alphabet: self.alphabet.iter().collect(), step: self.step },
            history: self.history.clone(),
        };
        save_checkpoint(dir, &self.varmap, &[&self.opt], &state)
    }

    /// The run's settings.
    pub fn spec(&self) -> &TrainTextSpec {
        &self.spec
    }

    /// Steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Evaluations so far.
    pub fn history(&self) -> &[EvalReport] {
        &self.history
    }

    /// The network being trained.
    pub fn gpt(&self) -> &Gpt {
        &self.gpt
    }

    /// The variables (to save the weights).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The alphabet, id order.
    pub fn alphabet(&self) -> &[char] {
        &self.alphabet
    }

    /// Learning rate at `step`: linear warm-up over 100 steps, then cosine decay to a tenth.
    pub fn lr_at(&self, step: usize) -> f64 {
        let (peak, warmup) = (self.spec.lr, 100.min(self.spec.steps / 10).max(1));
        if step < warmup {
            return peak * (step + 1) as f64 / warmup as f64;
        }
        let progress = (step - warmup) as f64 / (self.spec.steps - warmup).max(1) as f64;
        peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()))
    }

    /// `n` windows of `context + 1` ids from `ids`, drawn by `rng`: inputs and next-character targets.
    fn windows(&self, ids: &[u32], n: usize, rng: &mut SeededRng) -> Result<(Tensor, Tensor), TrainError> {
        let t = self.spec.config.context;
        if ids.len() <= t + 1 {
            return Err(TrainError::Invalid(format!("{} characters are too few for windows of {t}", ids.len())));
        }
        let (mut x, mut y) = (Vec::with_capacity(n * t), Vec::with_capacity(n * t));
        for _ in 0..n {
            let start = rng.below(ids.len() - t - 1);
            x.extend_from_slice(&ids[start..start + t]);
            y.extend_from_slice(&ids[start + 1..start + t + 1]);
        }
        Ok((Tensor::from_vec(x, (n, t), &self.device)?, Tensor::from_vec(y, (n, t), &self.device)?))
    }

    /// One optimiser step on a batch drawn from `train`; returns its loss.
    /// The batch depends only on the seed and the step, so resumed runs continue exactly.
    pub fn train_step(&mut self, train: &[u32]) -> Result<f64, TrainError> {
        let mut rng = SeededRng::new(self.spec.seed ^ (self.step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (x, y) = self.windows(train, self.spec.batch_size, &mut rng)?;
        let loss = self.gpt.loss(&x, &y)?;
        self.opt.config.lr = self.lr_at(self.step);
        self.opt.backward_step(&loss)?;
        self.step += 1;
        Ok(loss.to_scalar::<f32>()? as f64)
    }

    /// Mean held-out loss over fixed windows (the same ones at every evaluation).
    pub fn evaluate(&self, valid: &[u32]) -> Result<f64, TrainError> {
        let mut rng = SeededRng::new(0xE7A1);
        let (mut total, mut batches) = (0.0, 0);
        let mut left = self.spec.eval_windows.max(1);
        while left > 0 {
            let n = left.min(self.spec.batch_size.max(1));
            let (x, y) = self.windows(valid, n, &mut rng)?;
            total += self.gpt.loss(&x, &y)?.to_scalar::<f32>()? as f64 * n as f64;
            batches += n;
            left -= n;
        }
        Ok(total / batches as f64)
    }

    /// Trains up to the next evaluation (or the end), evaluates and records it.
    /// `on_step(step, loss)` follows progress; stops early when it returns false.
    pub fn train_until_eval(
        &mut self,
        corpus: &CharCorpus,
        on_step: &mut dyn FnMut(usize, f64) -> bool,
    ) -> Result<EvalReport, TrainError> {
        let start = Instant::now();
        let target = (self.step + self.spec.eval_every.max(1)).min(self.spec.steps);
        let (mut sum, mut count) = (0.0, 0);
        while self.step < target {
            let loss = self.train_step(&corpus.train)?;
            sum += loss;
            count += 1;
            if !on_step(self.step, loss) {
                break;
            }
        }
        let report = EvalReport {
            step: self.step,
            train_loss: sum / count.max(1) as f64,
            val_loss: self.evaluate(&corpus.valid)?,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.history.push(report.clone());
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vocab: usize, steps: usize) -> TrainTextSpec {
        TrainTextSpec {
            corpus: TextSource::Named(crate::io::text_corpus::CorpusName::Shakespeare),
            config: GptConfig::tiny(vocab),
            steps,
            batch_size: 8,
            lr: 1e-2,
            eval_every: steps,
            eval_windows: 16,
            seed: 1,
        }
    }

    #[test]
    fn the_tiny_model_learns_a_toy_sequence() {
        // "abcd" repeated: after training, every next character is certain.
        let corpus = CharCorpus::from_text(&"abcd".repeat(400));
        let mut t = TextTrainer::new(spec(corpus.vocab.len(), 150), corpus.vocab.clone(), &Device::Cpu).unwrap();
        let before = t.evaluate(&corpus.valid).unwrap();
        let report = t.train_until_eval(&corpus, &mut |_, _| true).unwrap();
        assert!(before > 1.0, "starts near ln 4: {before}");
        assert!(report.val_loss < 0.05, "{report:?}");
    }

    #[test]
    fn an_exported_model_loads_as_a_text_model_and_continues_the_pattern() {
        let corpus = CharCorpus::from_text(&"abcd".repeat(400));
        let mut t = TextTrainer::new(spec(corpus.vocab.len(), 150), corpus.vocab.clone(), &Device::Cpu).unwrap();
        t.train_until_eval(&corpus, &mut |_, _| true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let info = crate::train::export::ExportInfo { id: "toy", name: "toy", command: "test" };
        crate::text::export::export_char_gpt(&t, (100, 10), dir.path(), &info).unwrap();
        let manifest = crate::io::manifest::read_manifest(dir.path()).unwrap();
        let mut model = crate::library::load_text_model(&manifest, &Device::Cpu).unwrap();
        let spec = crate::text::generate::GenerateSpec {
            prompt: "abcdab".into(),
            chat: false,
            system: String::new(),
            history: Vec::new(),
            max_new_tokens: 10,
            sampling: crate::text::sampling::SamplingParams::greedy(),
            stop_strings: vec![],
        };
        let cancel = crate::train::cancel::CancelToken::new();
        let out = crate::text::generate::generate(model.as_mut(), &spec, &cancel, &mut |_, _| {}).unwrap();
        assert_eq!(out.text, "cdabcdabcd");
        assert!(std::fs::read_to_string(dir.path().join("README.md")).unwrap().contains("nats/character"));
    }

    #[test]
    fn resuming_continues_exactly() {
        let corpus = CharCorpus::from_text(&"the quick brown fox jumps over the lazy dog. ".repeat(30));
        let dir = tempfile::tempdir().unwrap();
        let mut straight = TextTrainer::new(spec(corpus.vocab.len(), 6), corpus.vocab.clone(), &Device::Cpu).unwrap();
        for _ in 0..3 {
            straight.train_step(&corpus.train).unwrap();
        }
        straight.save_checkpoint(dir.path()).unwrap();
        let mut resumed = TextTrainer::resume(dir.path(), 6, &Device::Cpu).unwrap();
        for _ in 0..3 {
            let a = straight.train_step(&corpus.train).unwrap();
            let b = resumed.train_step(&corpus.train).unwrap();
            assert_eq!(a, b, "losses differ after resume");
        }
    }
}
