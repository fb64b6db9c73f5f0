//! What the GEMM layers do around their products: bias and activation on the
//! way forward, the activation's mask and the bias gradient on the way back,
//! fused into single passes so that no separate candle op (and tensor) is needed.

use rayon::prelude::*;

use crate::nn::matrix::Element;

/// What follows a GEMM layer's bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// max(0, ·).
    Relu,
    /// `v` where positive, else `slope·v` (DCGAN's discriminator uses 0.2).
    LeakyRelu(f64),
}

impl Activation {
    /// The derivative's mask applies (anything but the identity).
    fn masks(self) -> bool {
        self != Self::Identity
    }
}

/// An activation as a type: loops written once over `S: Side<T>` are
/// compiled once per activation (through [`with_side!`]), with no branch on
/// the activation inside and a select the compiler can vectorise.
pub(crate) trait Side<T: Element>: Copy + Send + Sync {
    /// The activation of `v`. `<` keeps NaN visible instead of hiding it as 0.
    fn value(self, v: T) -> T;

    /// The gradient `d` where the output was not positive.
    fn gradient(self, d: T) -> T;

    /// The gradient through the activation, from its output `y`.
    #[inline]
    fn backward(self, y: T, d: T) -> T {
        if y > T::default() { d } else { self.gradient(d) }
    }
}

/// [`Activation::Identity`].
#[derive(Clone, Copy)]
pub(crate) struct IdentitySide;

/// [`Activation::Relu`].
#[derive(Clone, Copy)]
pub(crate) struct ReluSide;

/// [`Activation::LeakyRelu`] with its slope.
#[derive(Clone, Copy)]
pub(crate) struct LeakySide<T>(pub T);

impl<T: Element> Side<T> for IdentitySide {
    #[inline]
    fn value(self, v: T) -> T {
        v
    }

    #[inline]
    fn gradient(self, d: T) -> T {
        d
    }
}

impl<T: Element> Side<T> for ReluSide {
    #[inline]
    fn value(self, v: T) -> T {
        if v < T::default() { T::default() } else { v }
    }

    #[inline]
    fn gradient(self, _d: T) -> T {
        T::default()
    }
}

impl<T: Element> Side<T> for LeakySide<T> {
    #[inline]
    fn value(self, v: T) -> T {
        if v < T::default() { v * self.0 } else { v }
    }

    #[inline]
    fn gradient(self, d: T) -> T {
        d * self.0
    }
}

/// Runs `$body` with `$side` bound to the [`Side`] of `$activation` in the
/// element type `$t`: the body is compiled once per activation.
macro_rules! with_side {
    ($activation:expr, $t:ty, |$side:ident| $body:expr) => {
        match $activation {
            $crate::nn::epilogue::Activation::Identity => {
                let $side = $crate::nn::epilogue::IdentitySide;
                $body
            }
            $crate::nn::epilogue::Activation::Relu => {
                let $side = $crate::nn::epilogue::ReluSide;
                $body
            }
            $crate::nn::epilogue::Activation::LeakyRelu(slope) => {
                let $side = $crate::nn::epilogue::LeakySide(<$t as candle_core::WithDType>::from_f64(slope));
                $body
            }
        }
    };
}
pub(crate) use with_side;

/// Bias and activation, applied to each output item while it is still in cache.
#[derive(Clone, Copy)]
pub struct Epilogue<'a, T> {
    /// One value per channel of the item.
    pub bias: Option<&'a [T]>,
    /// Applied after the bias.
    pub activation: Activation,
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

    /// `row` ← activation(`src` + bias[channel]): a feature row copied out of a
    /// GEMM block and finished in the same pass.
    pub fn copy_row(&self, row: &mut [T], src: &[T], channel: usize) {
        let b = self.bias.map_or(T::default(), |b| b[channel]);
        with_side!(self.activation, T, |side| {
            for (d, &s) in row.iter_mut().zip(src) {
                *d = side.value(s + b);
            }
        })
    }

    /// The activation over `item`, in place.
    pub fn activate(&self, item: &mut [T]) {
        if self.activation.masks() {
            with_side!(self.activation, T, |side| item.iter_mut().for_each(|v| *v = side.value(*v)))
        }
    }
}

/// One pass over the output gradient `dy` [batch, channels, plane]: scales it
/// by the activation's derivative where its output `y` was not positive (0
/// for ReLU, the slope for leaky ReLU; a new buffer, none for the identity)
/// and sums it per channel over batch and positions (the bias gradient).
pub fn activation_mask_and_channel_sums<T: Element>(
    dy: &[T],
    y: &[T],
    activation: Activation,
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
    if !activation.masks() {
        let partials = dy
            .par_chunks(per)
            .map(|run| {
                let mut acc = vec![T::default(); channels];
                run.chunks(item).for_each(|d| sums(&mut acc, d));
                acc
            })
            .collect();
        return (None, in_order(partials));
    }
    let mut masked = vec![T::default(); dy.len()];
    let partials = masked
        .par_chunks_mut(per)
        .zip(dy.par_chunks(per).zip(y.par_chunks(per)))
        .map(|(m, (d, y))| {
            with_side!(activation, T, |side| {
                for ((m, &d), &y) in m.iter_mut().zip(d).zip(y) {
                    *m = side.backward(y, d);
                }
            });
            let mut acc = vec![T::default(); channels];
            m.chunks(item).for_each(|m| sums(&mut acc, m));
            acc
        })
        .collect();
    let db = in_order(partials);
    (Some(masked), db)
}
