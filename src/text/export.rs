//! Writes a trained character GPT as a model folder: weights, manifest and a
//! model card with the losses, the training command and a sample.

use std::fmt::Write as _;
use std::path::Path;

use crate::io::manifest::{Family, ModelManifest, write_manifest};
use crate::text::char_gpt::{CharCodec, CharGpt, CharGptManifest};
use crate::text::generate::{GenerateSpec, generate};
use crate::text::sampling::SamplingParams;
use crate::text::train::TextTrainer;
use crate::train::cancel::CancelToken;
use crate::train::error::{TrainError, file_err};
use crate::train::export::ExportInfo;

/// The card's sample: a seeded continuation of this prompt.
const SAMPLE_PROMPT: &str = "ROMEO:\n";

/// Writes `dir/model.safetensors`, `manifest.json` and `README.md`.
pub fn export_char_gpt(
    trainer: &TextTrainer,
    characters: (usize, usize),
    dir: &Path,
    info: &ExportInfo,
) -> Result<(), TrainError> {
    let Some(last) = trainer.history().last() else {
        return Err(TrainError::Invalid("no evaluation yet: nothing to export".into()));
    };
    let spec = trainer.spec();
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let weights = dir.join("model.safetensors");
    trainer.varmap().save(&weights).map_err(|e| file_err(&weights, e))?;
    let alphabet: String = trainer.alphabet().iter().collect();
    let config = CharGptManifest { format: "char-gpt".into(), gpt: spec.config.clone(), alphabet };
    let manifest = ModelManifest {
        id: info.id.into(),
        family: Family::Text,
        name: info.name.into(),
        latent_dim: 0,
        image_size: [0, 0],
        channels: 0,
        license: "MIT OR Apache-2.0 (weights trained by Latent Studio)".into(),
        dataset: spec.corpus.description(),
        weights: "model.safetensors".into(),
        classes: vec![],
        latent_map: None,
        config: serde_json::to_value(&config).map_err(|e| TrainError::Invalid(e.to_string()))?,
        dir: dir.to_owned(),
    };
    write_manifest(&manifest).map_err(|e| file_err(&manifest.manifest_path(), e))?;

    let (prompt, sample) = sample_text(trainer, 500)?;

    let params: usize = trainer.varmap().all_vars().iter().map(|v| v.elem_count()).sum();
    let seconds: f64 = trainer.history().iter().map(|r| r.seconds).sum();
    let c = &spec.config;
    let mut card = String::new();
    let _ = writeln!(card, "# {} (`{}`)\n", info.name, info.id);
    let _ = writeln!(card, "A character-level decoder-only transformer trained by Latent Studio's own code.\n");
    let _ = writeln!(card, "| | |\n|---|---|");
    let _ = writeln!(card, "| Data | {} |", spec.corpus.description());
    let _ = writeln!(card, "| Text | {} characters for training, {} held out |", characters.0, characters.1);
    let _ = writeln!(card, "| Weights license | MIT OR Apache-2.0 (weights trained by Latent Studio) |");
    let _ = writeln!(card, "| Tokenizer | characters: {} symbols, the corpus's own alphabet |", c.vocab);
    let _ = writeln!(card, "| Parameters | {params} ({:.1} MB as f32) |", params as f64 * 4.0 / 1e6);
    let _ = writeln!(
        card,
        "| Network | {} blocks, width {}, {} heads, context {} characters, GELU MLP ×4, pre-norm |",
        c.layers, c.width, c.heads, c.context
    );
    let _ = writeln!(
        card,
        "| Optimiser | AdamW (weight decay 0.01), peak lr {}, 100-step warm-up then cosine to a tenth, batch {} windows, seed {} |",
        spec.lr, spec.batch_size, spec.seed
    );
    let _ = writeln!(
        card,
        "| Steps | {} ({:.0} s on 2 CPU threads, {:.2} s/step) |",
        last.step,
        seconds,
        seconds / last.step.max(1) as f64
    );
    let _ = writeln!(
        card,
        "| Held-out loss | **{:.3} nats/character** (last tenth of the corpus, {} windows) |",
        last.val_loss, spec.eval_windows
    );
    let _ = writeln!(card, "\nTrained with:\n\n```sh\n{}\n```\n", info.command);
    let _ = writeln!(
        card,
        "Sample (prompt {:?}, temperature 0.8, seed 0):\n\n```text\n{}{}\n```\n",
        prompt, prompt, sample
    );
    let _ = writeln!(card, "| step | train loss | held-out loss | seconds |\n|---|---|---|---|");
    for r in trainer.history() {
        let _ = writeln!(card, "| {} | {:.3} | {:.3} | {:.1} |", r.step, r.train_loss, r.val_loss, r.seconds);
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, card).map_err(|e| file_err(&readme, e))
}

/// A seeded continuation (temperature 0.8, seed 0) of `max_new` characters
/// from the card's prompt, or from the alphabet's first character when the
/// text lacks the prompt's: the card's sample, and the Train view's after
/// every evaluation. Returns the prompt and the continuation.
pub fn sample_text(trainer: &TextTrainer, max_new: usize) -> Result<(String, String), TrainError> {
    let mut model = CharGpt::from_parts(
        "sample",
        trainer.gpt().clone(),
        CharCodec::new(trainer.alphabet().to_vec()),
        &candle_core::Device::Cpu,
    );
    let sampling = SamplingParams {
        temperature: 0.8,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_window: 0,
        seed: 0,
        ..SamplingParams::greedy()
    };
    let prompt = if SAMPLE_PROMPT.chars().all(|c| trainer.alphabet().contains(&c)) {
        SAMPLE_PROMPT.to_owned()
    } else {
        trainer.alphabet()[..1].iter().collect()
    };
    let spec = GenerateSpec {
        prompt: prompt.clone(),
        chat: false,
        system: String::new(),
        history: Vec::new(),
        max_new_tokens: max_new,
        sampling,
        stop_strings: vec![],
    };
    let sample = generate(&mut model, &spec, &CancelToken::new(), &mut |_, _| {})
        .map_err(|e| TrainError::Invalid(format!("sampling failed: {e}")))?;
    Ok((prompt, sample.text))
}
