//! What the GEMM layers do around their products: bias and ReLU on the way
//! forward, the ReLU mask and the bias gradient on the way back, fused into
//! single passes so that no separate candle op (and tensor) is needed.

use rayon::prelude::*;

use super::matrix::Element;

/// Bias and ReLU, applied to each output item while it is still in cache.
#[derive(Clone, Copy)]
pub struct Epilogue<'a, T> {
    /// One value per channel of the item.
    pub bias: Option<&'a [T]>,
    /// Apply max(0, ·) after the bias.
    pub relu: bool,
}

impl<T: Element> Epilogue<'_, T> {
    /// `item` [channels, plane] += bias[channel].
    pub fn add_bias(&self, item: &mut [T]) {
        if let Some(bias) = self.bias {
            for (plane, &b) in item.chunks_exact_mut(item.len() / bias.len()).zip(bias) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    }

    /// `row` ← max(0, `src` + bias[channel]): a feature row copied out of a
    /// GEMM block and finished in the same pass.
    pub fn copy_row(&self, row: &mut [T], src: &[T], channel: usize) {
        let b = self.bias.map_or(T::default(), |b| b[channel]);
        let zero = T::default();
        for (d, &s) in row.iter_mut().zip(src) {
            let v = s + b;
            *d = if self.relu && v < zero { zero } else { v };
        }
    }

    /// max(0, ·) over `item` when the layer has a ReLU.
    pub fn relu(&self, item: &mut [T]) {
        if self.relu {
            // `<` keeps NaN visible instead of hiding it as 0.
            item.iter_mut().filter(|v| **v < T::default()).for_each(|v| *v = T::default());
        }
    }
}

/// One pass over the output gradient `dy` [batch, channels, plane]: zeroes it
/// where the ReLU output `y` was not positive (when the op had a ReLU; a new
/// buffer) and sums it per channel over batch and positions (the bias gradient).
pub fn relu_mask_and_channel_sums<T: Element>(
    dy: &[T],
    y: Option<&[T]>,
    channels: usize,
    plane: usize,
) -> (Option<Vec<T>>, Vec<T>) {
    let item = channels * plane;
    let sums = |acc: &mut [T], dy: &[T]| {
        for (a, p) in acc.iter_mut().zip(dy.chunks_exact(plane)) {
            p.iter().for_each(|&v| *a += v);
        }
    };
    let zeros = || vec![T::default(); channels];
    let add = |mut a: Vec<T>, b: Vec<T>| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        a
    };
    let Some(y) = y else {
        let db = dy.par_chunks(item).fold(zeros, |mut acc, d| (sums(&mut acc, d), acc).1).reduce(zeros, add);
        return (None, db);
    };
    let mut masked = vec![T::default(); dy.len()];
    let db = masked
        .par_chunks_mut(item)
        .zip(dy.par_chunks(item).zip(y.par_chunks(item)))
        .fold(zeros, |mut acc, (m, (d, y))| {
            for ((m, &d), &y) in m.iter_mut().zip(d).zip(y) {
                *m = if y > T::default() { d } else { T::default() };
            }
            sums(&mut acc, m);
            acc
        })
        .reduce(zeros, add);
    (Some(masked), db)
}
