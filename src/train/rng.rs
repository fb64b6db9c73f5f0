//! A small seeded random number generator that gives the same numbers on every
//! platform and device, so a seed always means the same latent.

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijection that spreads every input bit over the output.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64: tiny, fast, and statistically good enough for sampling latents
/// and shuffling training data. Not for cryptography.
#[derive(Clone, Debug)]
pub struct SeededRng {
    state: u64,
    spare_normal: Option<f64>,
}

impl SeededRng {
    /// A generator whose whole stream is fixed by `seed`. The seed is
    /// scrambled first: SplitMix64 started at small nearby seeds gives
    /// near-identical first outputs (seeds 1, 2, 5 and 9 all drew a latent
    /// near (0, −1)).
    pub fn new(seed: u64) -> Self {
        let state = mix64(seed.wrapping_mul(GOLDEN_GAMMA) ^ 0x243F_6A88_85A3_08D3);
        Self { state, spare_normal: None }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in the open interval (0, 1): never exactly 0, so `ln` is safe.
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box–Muller; the second value is kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let theta = std::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `n` standard normal samples as `f32`.
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32).collect()
    }

    /// A uniform index in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a = SeededRng::new(7).normal_vec(16);
        let b = SeededRng::new(7).normal_vec(16);
        assert_eq!(a, b);
        assert_ne!(a, SeededRng::new(8).normal_vec(16));
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut rng = SeededRng::new(1);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is 1/sqrt(n) ≈ 0.0022; of the variance ≈ 0.0032.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
    }

    #[test]
    fn small_seeds_give_spread_out_latents() {
        // Regression: unscrambled, seeds 1, 2, 5 and 9 drew latents within 0.35 of
        // each other. Independent N(0, I) points in 2-D are √π ≈ 1.77 apart on average.
        let latents: Vec<Vec<f32>> = [1u64, 2, 5, 9].iter().map(|&s| SeededRng::new(s).normal_vec(2)).collect();
        let mut total = 0.0;
        for (i, a) in latents.iter().enumerate() {
            for b in &latents[i + 1..] {
                total += ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            }
        }
        assert!(total / 6.0 > 1.0, "mean distance {} between {latents:?}", total / 6.0);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        SeededRng::new(3).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }
}
