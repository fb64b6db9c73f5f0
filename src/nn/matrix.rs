//! Strided matrix views over slices and a safe wrapper around the `gemm`
//! crate's kernels (AVX-512/AVX2/NEON chosen at run time), plus per-thread
//! scratch buffers so that large temporaries are not allocated on every call.

use std::cell::RefCell;
use std::ops::{AddAssign, Mul};

use candle_core::{Layout, Result, Storage, WithDType};
use rayon::prelude::*;

/// Element types the layer kernels run on (f32 in models, f64 in reference tests).
pub trait Element: WithDType + Default + AddAssign + Mul<Output = Self> + PartialOrd {
    /// Runs `f` on a scratch slice of `len` elements (contents unspecified)
    /// that is reused by later calls on the same thread.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;

    /// eˣ (f32: latent-kernels' polynomial, which vectorises; f64: libm).
    fn exp(self) -> Self;

    /// `row` ← softmax(`scale` · `row`) (f32: latent-kernels' vectorised kernel).
    fn softmax(row: &mut [Self], scale: Self);

    /// The error function (f32: Abramowitz–Stegun 7.1.26 on the vectorising
    /// exp, within 5·10⁻⁷; f64: candle's, to double precision).
    fn erf(self) -> Self;

    /// `out[i] = value[i] · GELU(gate[i])` with the exact GELU (f32: latent-kernels' vectorised kernel).
    fn geglu_row(out: &mut [Self], value: &[Self], gate: &[Self]);

    /// `out[i] = a` or `a·sigmoid(a)` with `silu`, where `a = x[i]·scale + shift`.
    fn affine_row(out: &mut [Self], x: &[Self], scale: f64, shift: f64, silu: bool);

    /// Mean and population variance of `row`, accumulated in f64.
    fn moments(row: &[Self]) -> (f64, f64);
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Whether kernels reuse their scratch buffers (`bench conv` measures both).
static REUSE_SCRATCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Chooses between per-thread reusable scratch buffers (the default) and a
/// fresh allocation per call, for benchmarks.
pub fn set_scratch_reuse(reuse: bool) {
    REUSE_SCRATCH.store(reuse, std::sync::atomic::Ordering::Relaxed);
}

fn with_cell<T: Copy + Default, R>(
    cell: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    if !REUSE_SCRATCH.load(std::sync::atomic::Ordering::Relaxed) {
        return f(&mut vec![T::default(); len]);
    }
    cell.with(|c| match c.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, T::default());
            }
            f(&mut buf[..len])
        }
        // Re-entered on this thread (a rayon task stolen while waiting): use a fresh buffer.
        Err(_) => f(&mut vec![T::default(); len]),
    })
}

impl Element for f32 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        with_cell(&SCRATCH_F32, len, f)
    }

    fn exp(self) -> Self {
        latent_kernels::softmax::exp(self)
    }

    fn softmax(row: &mut [Self], scale: Self) {
        latent_kernels::softmax_scaled(row, scale);
    }

    fn erf(self) -> Self {
        latent_kernels::activation::erf(self)
    }

    fn geglu_row(out: &mut [Self], value: &[Self], gate: &[Self]) {
        latent_kernels::activation::geglu(out, value, gate);
    }

    fn affine_row(out: &mut [Self], x: &[Self], scale: f64, shift: f64, silu: bool) {
        latent_kernels::activation::affine(out, x, scale as f32, shift as f32, silu);
    }

    fn moments(row: &[Self]) -> (f64, f64) {
        latent_kernels::activation::mean_and_variance(row)
    }
}

impl Element for f64 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        with_cell(&SCRATCH_F64, len, f)
    }

    fn exp(self) -> Self {
        f64::exp(self)
    }

    fn softmax(row: &mut [Self], scale: Self) {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        row.iter_mut().for_each(|x| *x = ((*x - max) * scale).exp());
        let sum: f64 = row.iter().sum();
        row.iter_mut().for_each(|x| *x /= sum);
    }

    fn erf(self) -> Self {
        candle_core::cpu::erf::erf_f64(self)
    }

    fn geglu_row(out: &mut [Self], value: &[Self], gate: &[Self]) {
        for ((o, &v), &g) in out.iter_mut().zip(value).zip(gate) {
            *o = v * 0.5 * g * (1.0 + Element::erf(g * std::f64::consts::FRAC_1_SQRT_2));
        }
    }

    fn affine_row(out: &mut [Self], x: &[Self], scale: f64, shift: f64, silu: bool) {
        for (o, &x) in out.iter_mut().zip(x) {
            let a = x * scale + shift;
            *o = if silu { a / (1.0 + (-a).exp()) } else { a };
        }
    }

    fn moments(row: &[Self]) -> (f64, f64) {
        let n = row.len().max(1) as f64;
        let mean = row.iter().sum::<f64>() / n;
        (mean, row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
    }
}

/// A read-only matrix: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A dense row-major `rows × cols` matrix at the start of `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// `rows × cols`, rows `row_stride` apart (a column block of a wider matrix).
    pub fn strided(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Self {
        let m = Self { data, rows, cols, row_stride, col_stride: 1 };
        assert!(m.fits(data.len()), "matrix {rows}×{cols} (row stride {row_stride}) exceeds {} elements", data.len());
        m
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    fn fits(&self, len: usize) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < len
    }
}

/// How a product may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread (the caller already runs tasks in parallel).
    One,
    /// Split over the current rayon pool.
    Pool,
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major with row stride `ld`.
pub fn matmul<T: Element>(dst: &mut [T], ld: usize, a: MatRef<T>, b: MatRef<T>, accumulate: bool, threads: Threads) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions {} and {}", a.cols, b.rows);
    let out = MatRef { data: &[] as &[T], rows: a.rows, cols: b.cols, row_stride: ld, col_stride: 1 };
    assert!(out.fits(dst.len()), "matmul: destination {}×{} exceeds {} elements", a.rows, b.cols, dst.len());
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for i in 0..a.rows {
                dst[i * ld..i * ld + b.cols].fill(T::default());
            }
        }
        return;
    }
    // Splitting rows over tasks ourselves beats the crate's own threading for
    // short, wide products such as x·Wᵀ at batch 64 (74 → 125 GFLOP/s on 2 cores).
    let tasks = rayon::current_num_threads().min(a.rows / 16);
    if threads == Threads::Pool && tasks > 1 {
        let per = a.rows.div_ceil(tasks);
        dst.par_chunks_mut(per * ld).enumerate().for_each(|(t, d)| {
            let rows = per.min(a.rows - t * per);
            let sub = MatRef { data: &a.data[t * per * a.row_stride..], rows, ..a };
            matmul(d, ld, sub, b, accumulate, Threads::One);
        });
        return;
    }
    let parallelism = match threads {
        Threads::One => gemm::Parallelism::None,
        Threads::Pool => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    let s = |v: usize| v as isize;
    // SAFETY: the asserts above keep every index the kernel touches inside
    // `dst`, `a.data` and `b.data`; `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            s(ld),
            accumulate,
            a.data.as_ptr(),
            s(a.col_stride),
            s(a.row_stride),
            b.data.as_ptr(),
            s(b.col_stride),
            s(b.row_stride),
            T::from_f64(1.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The elements a contiguous layout covers (custom ops' inputs).
pub fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("GEMM ops need contiguous tensors, got strides {:?}", layout.stride()),
    }
}

/// The contiguous elements of a CPU tensor's storage.
pub fn cpu_slice<'a, T: Element>(storage: &'a Storage, layout: &Layout) -> Result<&'a [T]> {
    let Storage::Cpu(cpu) = storage else { candle_core::bail!("GEMM op: tensor is not on the CPU") };
    contiguous(cpu.as_slice::<T>()?, layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_views_match_the_definition() {
        // a: 2×3, b: 3×2; check a·b, aᵀ-view products and accumulation.
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0f64, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut c = [0.0f64; 4];
        matmul(&mut c, 2, MatRef::new(&a, 2, 3), MatRef::new(&b, 3, 2), false, Threads::One);
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        matmul(&mut c, 2, MatRef::new(&a, 2, 3), MatRef::new(&b, 3, 2), true, Threads::Pool);
        assert_eq!(c, [116.0, 128.0, 278.0, 308.0]);
        // aᵀ (3×2) · a (2×3) = 3×3 Gram matrix.
        let mut g = [0.0f64; 9];
        matmul(&mut g, 3, MatRef::new(&a, 2, 3).t(), MatRef::new(&a, 2, 3), false, Threads::One);
        assert_eq!(g, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }

    #[test]
    fn scratch_is_reused_and_sized() {
        let p1 = f32::with_scratch(100, |s| s.as_ptr() as usize);
        let p2 = f32::with_scratch(50, |s| {
            assert_eq!(s.len(), 50);
            s.as_ptr() as usize
        });
        assert_eq!(p1, p2);
    }
}
