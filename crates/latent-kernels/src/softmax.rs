//! Softmax with a polynomial exp that vectorises. Attention takes one exp per
//! head and cached position: at a few hundred positions, libm's scalar `expf`
//! was a third of a generated token's time.

/// `v ← exp(v − max v) / Σ exp(v − max v)`.
pub fn softmax(v: &mut [f32]) {
    softmax_scaled(v, 1.0);
}

/// The softmax of `scale · v` (`scale` > 0), the scaling fused into the same pass.
pub fn softmax_scaled(v: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { softmax_avx512(v, scale) };
            return;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { softmax_avx2(v, scale) };
            return;
        }
    }
    softmax_portable(v, scale);
}

/// Replaces each x of `v` by e^(x − max) and returns (max, Σ e^(x − max)):
/// an unnormalised softmax, for attention that merges chunks of keys later.
pub fn exp_shifted(v: &mut [f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { exp_shifted_avx512(v) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { exp_shifted_avx2(v) };
        }
    }
    exp_shifted_portable(v, 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_shifted_avx512(v: &mut [f32]) -> (f32, f32) {
    exp_shifted_portable(v, 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_avx2(v: &mut [f32]) -> (f32, f32) {
    exp_shifted_portable(v, 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_avx512(v: &mut [f32], scale: f32) {
    softmax_portable(v, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_avx2(v: &mut [f32], scale: f32) {
    softmax_portable(v, scale);
}

#[inline(always)]
fn softmax_portable(v: &mut [f32], scale: f32) {
    let (_, sum) = exp_shifted_portable(v, scale);
    let inv = 1.0 / sum;
    v.iter_mut().for_each(|x| *x *= inv);
}

/// e^((x − max)·scale) in place; returns max and the sum.
#[inline(always)]
fn exp_shifted_portable(v: &mut [f32], scale: f32) -> (f32, f32) {
    let max = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    // Sixteen partial sums, so the loop vectorises without reassociating floats.
    let mut sums = [0f32; 16];
    let mut chunks = v.chunks_exact_mut(16);
    for chunk in &mut chunks {
        for (x, s) in chunk.iter_mut().zip(&mut sums) {
            *x = exp((*x - max) * scale);
            *s += *x;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp((*x - max) * scale);
        sum += *x;
    }
    (max, sum)
}

/// eˣ for x ≤ 88 (Cephes' `expf`: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a
/// degree-6 polynomial for eʳ, 2ⁿ from the exponent bits). Within 2 ulp of the
/// true value; below −87 it flushes to (nearly) zero.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5·2²³ (|x·log₂e| < 2²²):
    // unlike `round_ties_even` this needs no SSE4.1, so it vectorises in
    // code compiled for the baseline x86-64 target instead of calling `rintf`.
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // ln 2 split in two so n·ln 2 is exact to f32 precision.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_float64() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            let ulp = f64::from(f32::EPSILON) * want;
            assert!((got - want).abs() <= 2.0 * ulp, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn exp_shifted_is_the_softmax_before_normalising() {
        let v: Vec<f32> = (0..77).map(|i| ((i * 13 % 31) as f32 - 15.0) * 0.4).collect();
        let (mut e, mut p) = (v.clone(), v.clone());
        let (max, sum) = exp_shifted(&mut e);
        softmax(&mut p);
        assert_eq!(max, v.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
        for (e, p) in e.iter().zip(&p) {
            assert!((e / sum - p).abs() <= 1e-6 * p, "{e} / {sum} vs {p}");
        }
    }

    #[test]
    fn softmax_matches_float64() {
        let mut v: Vec<f32> = (0..203).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.31).collect();
        let x64: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
        let max = x64.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = x64.iter().map(|x| (x - max).exp()).sum();
        softmax(&mut v);
        for (got, x) in v.iter().zip(&x64) {
            let want = (x - max).exp() / total;
            assert!((f64::from(*got) - want).abs() <= 1e-6 * want + 1e-12, "{got} vs {want}");
        }
        assert!((v.iter().map(|&p| f64::from(p)).sum::<f64>() - 1.0).abs() < 1e-5);
        let mut scaled: Vec<f32> = x64.iter().map(|&x| x as f32).collect();
        softmax_scaled(&mut scaled, 0.25);
        let total: f64 = x64.iter().map(|x| ((x - max) * 0.25).exp()).sum();
        for (got, x) in scaled.iter().zip(&x64) {
            let want = ((x - max) * 0.25).exp() / total;
            assert!((f64::from(*got) - want).abs() <= 1e-6 * want + 1e-12, "{got} vs {want}");
        }
    }
}
