//! The KV cache's storage: keys and values of every cached position per
//! block, in f32 or, as llama.cpp keeps them by default, in f16 (half the
//! memory and half the bytes attention reads per generated token).

use latent_kernels::{axpy_rows, axpy_rows_f16, dot_rows, dot_rows_f16, f16, store_f16};

pub use crate::spec::text::KvPrecision;

/// An element type the cache can hold; attention reads it through these.
pub trait CacheElement: Copy + Default + Send + Sync + 'static {
    /// `to ← from`, rounded to this type.
    fn store(to: &mut [Self], from: &[f32]);
    /// `scores[j] = scale · (q · keys[j·stride..][..q.len()])`: a query against a run of cached keys.
    fn scores(q: &[f32], keys: &[Self], stride: usize, scale: f32, scores: &mut [f32]);
    /// `out ← out + Σⱼ weights[j] · values[j·stride..][..out.len()]`, in order of j.
    fn weighted_sum(out: &mut [f32], weights: &[f32], values: &[Self], stride: usize);
}

impl CacheElement for f32 {
    fn store(to: &mut [Self], from: &[f32]) {
        to.copy_from_slice(from);
    }

    fn scores(q: &[f32], keys: &[Self], stride: usize, scale: f32, scores: &mut [f32]) {
        dot_rows(q, keys, stride, scale, scores);
    }

    fn weighted_sum(out: &mut [f32], weights: &[f32], values: &[Self], stride: usize) {
        axpy_rows(out, weights, values, stride);
    }
}

impl CacheElement for f16 {
    fn store(to: &mut [Self], from: &[f32]) {
        store_f16(to, from);
    }

    fn scores(q: &[f32], keys: &[Self], stride: usize, scale: f32, scores: &mut [f32]) {
        dot_rows_f16(q, keys, stride, scale, scores);
    }

    fn weighted_sum(out: &mut [f32], weights: &[f32], values: &[Self], stride: usize) {
        axpy_rows_f16(out, weights, values, stride);
    }
}

/// Per block: keys and values of every cached position, `[position, kv_dim]`.
pub struct Layers<T> {
    pub keys: Vec<Vec<T>>,
    pub values: Vec<Vec<T>>,
}

impl<T: CacheElement> Layers<T> {
    fn new(layers: usize) -> Self {
        Self { keys: vec![Vec::new(); layers], values: vec![Vec::new(); layers] }
    }

    /// Makes room for `positions` positions of `kv_dim` values, in steps of `growth` positions.
    pub fn reserve(&mut self, positions: usize, kv_dim: usize, growth: usize) {
        for cache in self.keys.iter_mut().chain(self.values.iter_mut()) {
            if cache.len() < positions * kv_dim {
                cache.resize(positions.next_multiple_of(growth) * kv_dim, T::default());
            }
        }
    }
}

/// The cache in the precision chosen at load time.
pub enum KvCache {
    F32(Layers<f32>),
    F16(Layers<f16>),
}

impl KvCache {
    pub fn new(precision: KvPrecision, layers: usize) -> Self {
        match precision {
            KvPrecision::F32 => Self::F32(Layers::new(layers)),
            KvPrecision::F16 => Self::F16(Layers::new(layers)),
        }
    }

    pub fn precision(&self) -> KvPrecision {
        match self {
            Self::F32(_) => KvPrecision::F32,
            Self::F16(_) => KvPrecision::F16,
        }
    }
}
