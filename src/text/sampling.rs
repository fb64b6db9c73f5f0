//! Choosing the next token from a language model's logits: repetition
//! penalty, temperature, top-k, top-p (nucleus) and min-p, then a seeded draw.
//! Temperature 0 is greedy (argmax).
//!
//! Order, as in llama.cpp's default chain: penalty on the raw logits, then
//! the filters on the tempered distribution, then the draw.

use crate::train::rng::SeededRng;

pub use crate::spec::text::SamplingParams;

/// Draws tokens with one seeded random stream.
pub struct Sampler {
    params: SamplingParams,
    rng: SeededRng,
}

impl Sampler {
    /// A sampler whose draws depend only on `params` (including the seed).
    pub fn new(params: SamplingParams) -> Self {
        let rng = SeededRng::new(params.seed);
        Self { params, rng }
    }

    /// The next token after `history`, from `logits` (modified in place).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        let recent = &history[history.len().saturating_sub(p.repeat_window)..];
        apply_repetition_penalty(logits, recent, p.repeat_penalty);
        apply_occurrence_penalties(logits, recent, p.frequency_penalty, p.presence_penalty);
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let mut candidates = softmax_top(logits, p.temperature, p.top_k);
        top_p(&mut candidates, p.top_p);
        min_p(&mut candidates, p.min_p);
        let total: f64 = candidates.iter().map(|c| c.1).sum();
        let mut r = self.rng.uniform() * total;
        for &(id, prob) in &candidates {
            if r < prob {
                return id;
            }
            r -= prob;
        }
        candidates.last().map_or_else(|| argmax(logits), |c| c.0)
    }
}

/// Index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// CTRL-style penalty: each distinct recent token's logit is divided by
/// `penalty` if positive, multiplied if negative.
pub fn apply_repetition_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &id in recent {
        if let Some(l) = logits.get_mut(id as usize).filter(|_| seen.insert(id)) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// OpenAI's frequency and presence penalties as llama.cpp applies them
/// (after the repetition penalty, over the same recent tokens): a token seen
/// n times loses `n × frequency + presence` from its logit.
pub fn apply_occurrence_penalties(logits: &mut [f32], recent: &[u32], frequency: f32, presence: f32) {
    if frequency == 0.0 && presence == 0.0 {
        return;
    }
    let mut counts = std::collections::HashMap::new();
    for &id in recent {
        *counts.entry(id).or_insert(0u32) += 1;
    }
    for (id, n) in counts {
        if let Some(l) = logits.get_mut(id as usize) {
            *l -= n as f32 * frequency + presence;
        }
    }
}

/// (token, probability) of softmax(logits / temperature), most likely first,
/// computed in f64.
pub fn softmax_sorted(logits: &[f32], temperature: f32) -> Vec<(u32, f64)> {
    softmax_top(logits, temperature, 0)
}

/// [`softmax_sorted`] cut to its `k` most likely entries (0 keeps all):
/// the same entries in the same order, but only those `k` are sorted (a
/// whole vocabulary sorted for every token was a few per cent of generation).
pub fn softmax_top(logits: &[f32], temperature: f32, k: usize) -> Vec<(u32, f64)> {
    let t = temperature as f64;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i as u32, ((l as f64 - max) / t).exp())).collect();
    let sum: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= sum);
    // Most likely first, then the lower id: a total order, so the k best are one set.
    let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k > 0 && k < probs.len() {
        probs.select_nth_unstable_by(k - 1, order);
        probs.truncate(k);
    }
    probs.sort_by(order);
    probs
}

/// Keeps the `k` most likely candidates (0 keeps all).
pub fn top_k(candidates: &mut Vec<(u32, f64)>, k: usize) {
    if k > 0 {
        candidates.truncate(k);
    }
}

/// Keeps the shortest prefix of sorted candidates whose mass reaches `p`
/// (relative to the mass still present).
pub fn top_p(candidates: &mut Vec<(u32, f64)>, p: f32) {
    if p >= 1.0 {
        return;
    }
    let total: f64 = candidates.iter().map(|c| c.1).sum();
    let mut mass = 0.0;
    let keep = candidates
        .iter()
        .position(|c| {
            mass += c.1;
            mass >= p as f64 * total
        })
        .map_or(candidates.len(), |i| i + 1);
    candidates.truncate(keep);
}

/// Drops candidates less likely than `min_p` × the most likely one.
pub fn min_p(candidates: &mut Vec<(u32, f64)>, min_p: f32) {
    if let Some(&(_, best)) = candidates.first() {
        let floor = best * min_p as f64;
        candidates.retain(|c| c.1 >= floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_k_are_the_first_k_of_the_whole_sorted_vocabulary() {
        // Ties included: ids break them in both.
        let logits: Vec<f32> = (0..5000).map(|i| ((i * 7919 % 997) as f32 * 0.01).round()).collect();
        let all = softmax_sorted(&logits, 0.8);
        for k in [1, 2, 40, 4999, 5000, 6000] {
            assert_eq!(softmax_top(&logits, 0.8, k), all[..k.min(all.len())], "k = {k}");
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_the_mass() {
        let logits = [3.0f32, 2.0, 1.0, 0.0, -1.0];
        let probs = softmax_sorted(&logits, 1.0);
        // softmax: 0.636, 0.234, 0.086, 0.032, 0.012
        for (p, expected) in [(0.5, 1), (0.636, 1), (0.64, 2), (0.87, 2), (0.9, 3), (0.999, 5)] {
            let mut c = probs.clone();
            top_p(&mut c, p);
            assert_eq!(c.len(), expected, "top-p {p}");
            let kept: f64 = c.iter().map(|c| c.1).sum();
            let without_last = kept - c.last().unwrap().1;
            assert!(kept >= p as f64 - 1e-12 && without_last < p as f64, "top-p {p}: kept {kept}");
        }
    }

    #[test]
    fn softmax_matches_the_definition_with_temperature() {
        let logits = [1.0f32, 0.5, -2.0];
        let t = 0.7;
        let z: f64 = logits.iter().map(|&l| (l as f64 / t).exp()).sum();
        for (id, p) in softmax_sorted(&logits, t as f32) {
            let expected = (logits[id as usize] as f64 / t).exp() / z;
            assert!((p - expected).abs() < 1e-7, "{id}: {p} vs {expected}");
        }
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_logits_once() {
        let mut logits = [2.0f32, -1.0, 0.5, 3.0];
        apply_repetition_penalty(&mut logits, &[0, 1, 0, 0], 2.0);
        assert_eq!(logits, [1.0, -2.0, 0.5, 3.0]);
    }

    #[test]
    fn frequency_counts_occurrences_and_presence_counts_once() {
        let mut logits = [2.0f32, -1.0, 0.5, 3.0];
        apply_occurrence_penalties(&mut logits, &[0, 1, 0, 0], 0.5, 0.25);
        assert_eq!(logits, [2.0 - 1.5 - 0.25, -1.0 - 0.5 - 0.25, 0.5, 3.0]);
    }

    #[test]
    fn min_p_and_top_k_filter() {
        let mut c: Vec<(u32, f64)> = vec![(0, 0.5), (1, 0.3), (2, 0.04), (3, 0.16)];
        c.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut k = c.clone();
        top_k(&mut k, 2);
        assert_eq!(k.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1]);
        min_p(&mut c, 0.1); // floor 0.05 drops token 2
        assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), [0, 1, 3]);
    }

    #[test]
    fn zero_temperature_is_greedy_and_seeds_repeat() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let mut greedy = Sampler::new(SamplingParams::greedy());
        assert_eq!(greedy.sample(&mut logits.clone(), &[]), argmax(&logits));
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams { seed, top_k: 0, min_p: 0.0, ..Default::default() });
            (0..20).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn draws_follow_the_filtered_distribution() {
        // Two tokens with probabilities 0.75 / 0.25 after softmax: count draws.
        let logits = [3f32.ln(), 0.0];
        let mut s = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_window: 0,
            seed: 9,
            ..SamplingParams::greedy()
        });
        let n = 20_000;
        let zeros = (0..n).filter(|_| s.sample(&mut logits.clone(), &[]) == 0).count();
        let freq = zeros as f64 / n as f64;
        assert!((freq - 0.75).abs() < 0.015, "{freq}");
    }
}
