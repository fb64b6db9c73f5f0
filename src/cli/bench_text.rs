//! `bench text`: prompt processing and generation speed of a language model,
//! measured the way llama.cpp's llama-bench does (pp: one forward pass over N
//! prompt tokens; tg: M tokens one at a time after the prompt), so that
//! `benches/llama_cpp_bench.py` can put both side by side.

use std::time::Instant;

use super::text::ModelChoice;
use crate::text::sampling::argmax;

/// Text whose tokens make the benchmark prompt (repeated as needed).
const PASSAGE: &str = "The studio runs every model on the user's own machine. Artists type a prompt, \
    watch the answer appear token by token, change the temperature and try again. ";

/// Times `runs` rounds and prints a table or JSON.
pub fn bench_text(
    models_dir: &std::path::Path,
    choice: &ModelChoice,
    prompt_tokens: usize,
    gen_tokens: usize,
    runs: usize,
    json: bool,
) -> anyhow::Result<()> {
    let mut model = choice.load(models_dir)?;
    let passage = model.codec().encode(PASSAGE, false)?;
    anyhow::ensure!(!passage.is_empty(), "the tokenizer gives no tokens for the benchmark text");
    let prompt: Vec<u32> = passage.iter().copied().cycle().take(prompt_tokens.max(1)).collect();
    anyhow::ensure!(
        prompt.len() + gen_tokens < model.context_len(),
        "{} + {gen_tokens} tokens do not fit the context of {}",
        prompt.len(),
        model.context_len()
    );
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        model.reset();
        let t = Instant::now();
        let mut logits = model.forward(&prompt, 0)?;
        let pp_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for i in 0..gen_tokens {
            let next = argmax(&logits);
            logits = model.forward(&[next], prompt.len() + i)?;
        }
        let tg_s = t.elapsed().as_secs_f64();
        if run > 0 {
            // Run 0 warms caches and the allocator.
            pp.push(prompt.len() as f64 / pp_s);
            tg.push(gen_tokens as f64 / tg_s.max(1e-9));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (pp, tg) = (median(&mut pp), median(&mut tg));
    let threads = candle_core::utils::get_num_threads();
    if json {
        let out = serde_json::json!({
            "model": model.name(), "engine": model.engine(), "threads": threads, "runs": runs,
            "prompt_tokens": prompt.len(), "gen_tokens": gen_tokens,
            "pp_tokens_per_s": pp, "tg_tokens_per_s": tg,
        });
        println!("{out}");
        return Ok(());
    }
    println!("bench text: {} on {} ({threads} threads, median of {runs} runs)\n", model.name(), model.engine());
    println!("| test | tokens/s |\n|---|---|");
    println!("| pp{} (prompt processing) | {pp:.1} |", prompt.len());
    println!("| tg{gen_tokens} (generation) | {tg:.1} |");
    Ok(())
}
