//! Attention's vector primitives over an f16 KV cache (llama.cpp's default
//! cache type): the query and the weights stay f32, the cached keys and values
//! are widened eight at a time with F16C. Half the bytes per cached position
//! is what makes long contexts faster: at a few hundred positions, reading the
//! cache is a large share of a generated token's memory traffic.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Σ aᵢbᵢ with `b` in half precision, accumulated in f32.
pub fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        return unsafe { x86::dot_f16(a, b) };
    }
    a.iter().zip(b).map(|(&x, y)| x * y.to_f32()).sum()
}

/// y ← y + a·x with `x` in half precision.
pub fn axpy_f16(y: &mut [f32], a: f32, x: &[f16]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        unsafe { x86::axpy_f16(y, a, x) };
        return;
    }
    for (y, x) in y.iter_mut().zip(x) {
        *y = a.mul_add(x.to_f32(), *y);
    }
}

/// [`crate::vector::dot_rows`] over half-precision rows: the same numbers as [`dot_f16`] per row.
pub fn dot_rows_f16(q: &[f32], rows: &[f16], stride: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        unsafe { x86::dot_rows_f16(q, rows, stride, scale, out) };
        return;
    }
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_f16(q, &rows[j * stride..j * stride + q.len()]) * scale;
    }
}

/// [`crate::vector::axpy_rows`] over half-precision rows: the same numbers as [`axpy_f16`] per row.
pub fn axpy_rows_f16(y: &mut [f32], a: &[f32], rows: &[f16], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        unsafe { x86::axpy_rows_f16(y, a, rows, stride) };
        return;
    }
    let n = y.len();
    for (j, &a) in a.iter().enumerate() {
        axpy_f16(y, a, &rows[j * stride..j * stride + n]);
    }
}

/// `to[i] ← from[i]` rounded to the nearest half (ties to even), as llama.cpp
/// stores keys and values in an f16 cache.
pub fn store_f16(to: &mut [f16], from: &[f32]) {
    to.convert_from_f32_slice(from);
}

#[cfg(target_arch = "x86_64")]
fn avx2_f16c() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Eight halves from `p`, widened.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn load8(p: *const f16) -> __m256 {
        // SAFETY: callers pass a pointer with 8 halves after it.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast::<__m128i>()) })
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_rows_f16(q: &[f32], rows: &[f16], stride: usize, scale: f32, out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = dot_f16(q, &rows[j * stride..j * stride + q.len()]) * scale;
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy_rows_f16(y: &mut [f32], a: &[f32], rows: &[f16], stride: usize) {
        let n = y.len();
        for (j, &a) in a.iter().enumerate() {
            axpy_f16(y, a, &rows[j * stride..j * stride + n]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
        let n = a.len().min(b.len());
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        // SAFETY: every load reads 8 elements that end at or before n.
        unsafe {
            while i + 16 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), load8(bp.add(i)), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i + 8)), load8(bp.add(i + 8)), a1);
                i += 16;
            }
            while i + 8 <= n {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(ap.add(i)), load8(bp.add(i)), a0);
                i += 8;
            }
        }
        let mut total = crate::dot_avx2::hsum(_mm256_add_ps(a0, a1));
        for j in i..n {
            total += a[j] * b[j].to_f32();
        }
        total
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) fn axpy_f16(y: &mut [f32], a: f32, x: &[f16]) {
        let n = y.len().min(x.len());
        let scale = _mm256_set1_ps(a);
        let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
        let mut i = 0;
        // SAFETY: every load and store covers 8 elements that end at or before n.
        unsafe {
            while i + 8 <= n {
                let sum = _mm256_fmadd_ps(scale, load8(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
                _mm256_storeu_ps(yp.add(i), sum);
                i += 8;
            }
        }
        for j in i..n {
            y[j] = a.mul_add(x[j].to_f32(), y[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_products_match_float64_of_the_stored_values() {
        for n in [1, 7, 8, 15, 16, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let wide: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 3.0).collect();
            let mut b = vec![f16::ZERO; n];
            store_f16(&mut b, &wide);
            for (h, &w) in b.iter().zip(&wide) {
                assert_eq!(*h, f16::from_f32(w), "rounding to nearest");
            }
            let want: f64 = a.iter().zip(&b).map(|(&x, y)| f64::from(x) * f64::from(y.to_f32())).sum();
            assert!((f64::from(dot_f16(&a, &b)) - want).abs() < 1e-5, "n = {n}");
            let mut scores = [0f32; 1];
            dot_rows_f16(&a, &b, n, 0.5, &mut scores);
            assert_eq!(scores[0].to_bits(), (dot_f16(&a, &b) * 0.5).to_bits());
            let mut y = a.clone();
            axpy_f16(&mut y, -0.75, &b);
            let mut y_rows = a.clone();
            axpy_rows_f16(&mut y_rows, &[-0.75], &b, n);
            assert_eq!(y, y_rows);
            for ((y, &a), h) in y.iter().zip(&a).zip(&b) {
                let want = f64::from(a) - 0.75 * f64::from(h.to_f32());
                assert!((f64::from(*y) - want).abs() < 1e-6);
            }
        }
    }
}
