//! Following llama.cpp's greedy tokens: our argmax must agree at every step
//! except near-ties.

use latent_studio::text::model::TextModel;
use latent_studio::text::sampling::argmax;

/// How our engine followed llama.cpp's greedy generation.
pub struct Followed {
    /// Steps agreeing before the first divergence (free-running, the texts part there).
    pub prefix: usize,
    /// The accepted divergences, with both gaps.
    pub ties: Vec<String>,
}

/// Feeds `prompt`, then llama.cpp's tokens `expected` one at a time, and
/// compares our argmax before each with llama.cpp's pick. A divergence is
/// accepted only at a near-tie on either side: llama.cpp's top-2 gap
/// (`gaps`), or ours between the two picked tokens, below `near_tie`.
pub fn follow(
    model: &mut dyn TextModel,
    prompt: &[u32],
    expected: &[u32],
    gaps: &[f64],
    near_tie: f64,
    what: &str,
) -> Followed {
    model.reset();
    let mut logits = model.forward(prompt, 0).unwrap();
    let (mut prefix, mut diverged, mut ties) = (0, false, Vec::new());
    for (step, &want) in expected.iter().enumerate() {
        let got = argmax(&logits);
        if got != want {
            let gap = gaps[step];
            let ours = f64::from(logits[got as usize] - logits[want as usize]);
            assert!(
                gap.min(ours) < near_tie,
                "{what}: step {step} gives {got}, llama.cpp {want}: llama.cpp's top-2 gap {gap}, \
                 ours between the two {ours}; neither is a near-tie"
            );
            diverged = true;
            ties.push(format!("step {step} (gaps {gap:.3} / ours {ours:.3})"));
        } else if !diverged {
            prefix += 1;
        }
        logits = model.forward(&[want], prompt.len() + step).unwrap();
    }
    Followed { prefix, ties }
}
