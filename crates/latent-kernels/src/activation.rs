//! Element-wise activations on f32 rows, written so they vectorise (no libm
//! calls), with AVX-512/AVX2 variants picked at run time.

use crate::softmax::exp;

/// erf(x) by Abramowitz–Stegun 7.1.26 (within 5·10⁻⁷ in f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// GELU(x) = x·Φ(x), the exact (erf) form.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `out[i] = value[i] · GELU(gate[i])` (GEGLU).
pub fn geglu(out: &mut [f32], value: &[f32], gate: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { geglu_avx512(out, value, gate) };
            return;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { geglu_avx2(out, value, gate) };
            return;
        }
    }
    geglu_portable(out, value, gate);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn geglu_avx512(out: &mut [f32], value: &[f32], gate: &[f32]) {
    geglu_portable(out, value, gate);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn geglu_avx2(out: &mut [f32], value: &[f32], gate: &[f32]) {
    geglu_portable(out, value, gate);
}

#[inline(always)]
fn geglu_portable(out: &mut [f32], value: &[f32], gate: &[f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(value).zip(gate) {
        *o = v * gelu(g);
    }
}

/// `gate[i] ← silu(gate[i]) · up[i]` (SwiGLU, llama's feed-forward).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { swiglu_avx512(gate, up) };
            return;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { swiglu_avx2(gate, up) };
            return;
        }
    }
    swiglu_portable(gate, up);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn swiglu_avx512(gate: &mut [f32], up: &[f32]) {
    swiglu_portable(gate, up);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
    swiglu_portable(gate, up);
}

#[inline(always)]
fn swiglu_portable(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// `out[i] = a` or, with `silu`, `a·sigmoid(a)`, where `a = x[i]·scale + shift`
/// (a normalised channel's affine step, fused with the activation that follows).
pub fn affine(out: &mut [f32], x: &[f32], scale: f32, shift: f32, silu: bool) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            unsafe { affine_avx512(out, x, scale, shift, silu) };
            return;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { affine_avx2(out, x, scale, shift, silu) };
            return;
        }
    }
    affine_portable(out, x, scale, shift, silu);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn affine_avx512(out: &mut [f32], x: &[f32], scale: f32, shift: f32, silu: bool) {
    affine_portable(out, x, scale, shift, silu);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn affine_avx2(out: &mut [f32], x: &[f32], scale: f32, shift: f32, silu: bool) {
    affine_portable(out, x, scale, shift, silu);
}

#[inline(always)]
fn affine_portable(out: &mut [f32], x: &[f32], scale: f32, shift: f32, silu: bool) {
    if silu {
        for (o, &x) in out.iter_mut().zip(x) {
            let a = x * scale + shift;
            *o = a / (1.0 + exp(-a));
        }
    } else {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = x * scale + shift;
        }
    }
}

/// Mean and (population) variance of `x`, accumulated in f64 lanes.
pub fn mean_and_variance(x: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            return unsafe { moments_avx512(x) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { moments_avx2(x) };
        }
    }
    moments_portable(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn moments_avx512(x: &[f32]) -> (f64, f64) {
    moments_portable(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn moments_avx2(x: &[f32]) -> (f64, f64) {
    moments_portable(x)
}

#[inline(always)]
fn moments_portable(x: &[f32]) -> (f64, f64) {
    #[inline(always)]
    fn lanes(x: &[f32], f: impl Fn(f64) -> f64) -> f64 {
        let mut acc = [0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for chunk in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(chunk) {
                *a += f(f64::from(v));
            }
        }
        acc.iter().sum::<f64>() + chunks.remainder().iter().map(|&v| f(f64::from(v))).sum::<f64>()
    }
    let n = x.len().max(1) as f64;
    let mean = lanes(x, |v| v) / n;
    (mean, lanes(x, |v| (v - mean) * (v - mean)) / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geglu_matches_float64() {
        let gate: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) * 0.037).collect();
        let value: Vec<f32> = (0..300).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut out = vec![0f32; 300];
        geglu(&mut out, &value, &gate);
        for i in 0..300 {
            let g = f64::from(gate[i]);
            // Φ(g) from the complementary error function's series-free relation via f64 libm-free erf:
            let want = f64::from(value[i]) * g * 0.5 * (1.0 + erf64(g / std::f64::consts::SQRT_2));
            assert!((f64::from(out[i]) - want).abs() < 1e-6 * (1.0 + want.abs()), "{i}: {} vs {want}", out[i]);
        }
    }

    #[test]
    fn swiglu_matches_float64() {
        let gate: Vec<f32> = (0..301).map(|i| (i as f32 - 150.0) * 0.11).collect();
        let up: Vec<f32> = (0..301).map(|i| 1.0 - i as f32 * 0.013).collect();
        let mut out = gate.clone();
        swiglu(&mut out, &up);
        for i in 0..301 {
            let g = f64::from(gate[i]);
            let want = g / (1.0 + (-g).exp()) * f64::from(up[i]);
            assert!((f64::from(out[i]) - want).abs() < 1e-6 * (1.0 + want.abs()), "{i}: {} vs {want}", out[i]);
        }
    }

    #[test]
    fn affine_silu_matches_float64() {
        let x: Vec<f32> = (0..77).map(|i| (i as f32 - 38.0) * 0.21).collect();
        let mut out = vec![0f32; 77];
        affine(&mut out, &x, 1.5, -0.25, true);
        for (o, &x) in out.iter().zip(&x) {
            let a = f64::from(x) * 1.5 - 0.25;
            let want = a / (1.0 + (-a).exp());
            assert!((f64::from(*o) - want).abs() < 1e-6 * (1.0 + want.abs()), "{o} vs {want}");
        }
    }

    /// erf in f64 by its Maclaurin series (|x| ≤ 4: converges, terms shrink after ~x² of them).
    fn erf64(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 3.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }
}
