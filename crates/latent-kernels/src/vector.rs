//! Float vector primitives for attention (scores q·k, weighted sums of
//! values), compiled for AVX2/FMA where the CPU has them: the crate's
//! baseline target (SSE2) would run them at half the width and without FMA.

/// Σ aᵢbᵢ.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// y ← y + a·x.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { axpy_avx2(y, a, x) };
        return;
    }
    axpy_portable(y, a, x);
}

/// `out[j] = scale · (q · rows[j·stride..][..q.len()])` for every j of `out`:
/// a query against a run of cached keys, one call (and one feature check)
/// for the run instead of one per key. The same numbers as [`dot`].
pub fn dot_rows(q: &[f32], rows: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { dot_rows_avx2(q, rows, stride, scale, out) };
        return;
    }
    dot_rows_portable(q, rows, stride, scale, out);
}

/// `y ← y + Σⱼ a[j] · rows[j·stride..][..y.len()]`, in order of j: weights
/// against a run of cached values. The same numbers as [`axpy`] in a loop.
pub fn axpy_rows(y: &mut [f32], a: &[f32], rows: &[f32], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { axpy_rows_avx2(y, a, rows, stride) };
        return;
    }
    axpy_rows_portable(y, a, rows, stride);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_rows_avx2(q: &[f32], rows: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    dot_rows_portable(q, rows, stride, scale, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_rows_avx2(y: &mut [f32], a: &[f32], rows: &[f32], stride: usize) {
    axpy_rows_portable(y, a, rows, stride);
}

#[inline(always)]
fn dot_rows_portable(q: &[f32], rows: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_portable(q, &rows[j * stride..j * stride + q.len()]) * scale;
    }
}

#[inline(always)]
fn axpy_rows_portable(y: &mut [f32], a: &[f32], rows: &[f32], stride: usize) {
    let n = y.len();
    for (j, &a) in a.iter().enumerate() {
        axpy_portable(y, a, &rows[j * stride..j * stride + n]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn axpy_avx2(y: &mut [f32], a: f32, x: &[f32]) {
    axpy_portable(y, a, x);
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    // Sixteen partial sums: the loop vectorises without reassociating floats.
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (ca, cb) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = ca[i].mul_add(cb[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn axpy_portable(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = a.mul_add(x, *y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_rows_give_the_bits_of_one_call_per_row() {
        let (hd, stride, len) = (64, 192, 7);
        let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.3).sin()).collect();
        let rows: Vec<f32> = (0..stride * len).map(|i| (i as f32 * 0.07).cos()).collect();
        let mut scores = vec![0f32; len];
        dot_rows(&q, &rows[5..], stride, 0.125, &mut scores);
        let mut y = vec![0.5f32; hd];
        axpy_rows(&mut y, &scores, &rows[5..], stride);
        let mut want_y = vec![0.5f32; hd];
        for (j, s) in scores.iter().enumerate() {
            let row = &rows[5 + j * stride..5 + j * stride + hd];
            assert_eq!(s.to_bits(), (dot(&q, row) * 0.125).to_bits());
            axpy(&mut want_y, *s, row);
        }
        assert_eq!(y, want_y);
    }

    #[test]
    fn dot_and_axpy_match_float64() {
        for n in [1, 15, 16, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
            assert!((f64::from(dot(&a, &b)) - want).abs() < 1e-5, "n = {n}");
            let mut y = b.clone();
            axpy(&mut y, 0.5, &a);
            for ((y, &b), &a) in y.iter().zip(&b).zip(&a) {
                assert!((f64::from(*y) - (f64::from(b) + 0.5 * f64::from(a))).abs() < 1e-6);
            }
        }
    }
}
