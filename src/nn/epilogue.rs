//! What the GEMM layers do around their products: bias and ReLU on the way
//! forward, the ReLU mask and the bias gradient on the way back, fused into
//! single passes so that no separate candle op (and tensor) is needed.

use rayon::prelude::*;

use crate::nn::matrix::Element;

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
    // Partial sums over fixed runs of items, added in order afterwards: the
    // result does not depend on how rayon splits the work (resume is exact).
    let per = (65_536 / item.max(1)).max(1) * item;
    let in_order = |partials: Vec<Vec<T>>| {
        partials.into_iter().fold(vec![T::default(); channels], |mut a, b| {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
            a
        })
    };
    let Some(y) = y else {
        let partials = dy
            .par_chunks(per)
            .map(|run| {
                let mut acc = vec![T::default(); channels];
                run.chunks(item).for_each(|d| sums(&mut acc, d));
                acc
            })
            .collect();
        return (None, in_order(partials));
    };
    let mut masked = vec![T::default(); dy.len()];
    let partials = masked
        .par_chunks_mut(per)
        .zip(dy.par_chunks(per).zip(y.par_chunks(per)))
        .map(|(m, (d, y))| {
            for ((m, &d), &y) in m.iter_mut().zip(d).zip(y) {
                *m = if y > T::default() { d } else { T::default() };
            }
            let mut acc = vec![T::default(); channels];
            m.chunks(item).for_each(|m| sums(&mut acc, m));
            acc
        })
        .collect();
    let db = in_order(partials);
    (Some(masked), db)
}
