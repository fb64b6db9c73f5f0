//! im2col ("unfold") and col2im ("fold") as candle custom ops on the CPU.
//!
//! With them a convolution is one large GEMM: conv2d is `W · im2col(x)` and
//! the transposed convolution is `col2im(Wᵀ · x)`. The two ops are adjoint
//! linear maps, so each one's backward pass is the other, and candle's own
//! matmul backward supplies the rest of the gradients.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Where the patches of a convolution come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Step between patches.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
}

impl PatchGeometry {
    fn span(&self) -> usize {
        self.dilation * (self.kernel - 1) + 1
    }

    /// Output height of the convolution (number of patch rows).
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.span()) / self.stride + 1
    }

    /// Output width of the convolution (number of patch columns).
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.span()) / self.stride + 1
    }

    /// Rows of the patch matrix: channels × kernel².
    pub fn rows(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Columns of the patch matrix: batch × output positions.
    pub fn cols(&self) -> usize {
        self.batch * self.out_height() * self.out_width()
    }

    /// Checks that at least one patch fits and nothing is zero.
    pub fn validate(&self) -> Result<()> {
        let fits = |n: usize| n + 2 * self.padding >= self.span();
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 || !fits(self.height) || !fits(self.width) {
            candle_core::bail!("convolution geometry does not fit: {self:?}");
        }
        Ok(())
    }

    /// Input coordinate of output index `o` at kernel tap `t`, if inside the image.
    #[inline]
    fn source(&self, o: usize, t: usize, size: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation).checked_sub(self.padding).filter(|&i| i < size)
    }
}

/// Element types the kernels run on.
trait Element: Copy + Default + Send + Sync + std::ops::AddAssign {}
impl Element for f32 {}
impl Element for f64 {}

/// [batch, channels, h, w] → [channels·k², batch·oh·ow]; row (c, ki, kj), column (b, oy, ox).
fn im2col<T: Element>(x: &[T], g: &PatchGeometry) -> Vec<T> {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    let plane = oh * ow;
    let ncols = g.cols();
    let mut out = vec![T::default(); g.rows() * ncols];
    out.par_chunks_mut(ncols).enumerate().for_each(|(row, dst)| {
        let (c, ki, kj) = (row / (k * k), (row / k) % k, row % k);
        for b in 0..g.batch {
            let src = &x[(b * g.channels + c) * g.height * g.width..][..g.height * g.width];
            let dst = &mut dst[b * plane..(b + 1) * plane];
            for oy in 0..oh {
                let drow = &mut dst[oy * ow..(oy + 1) * ow];
                let Some(iy) = g.source(oy, ki, g.height) else { continue }; // stays zero
                let srow = &src[iy * g.width..(iy + 1) * g.width];
                for (ox, d) in drow.iter_mut().enumerate() {
                    if let Some(ix) = g.source(ox, kj, g.width) {
                        *d = srow[ix];
                    }
                }
            }
        }
    });
    out
}

/// The adjoint of [`im2col`]: sums every patch entry back into its pixel.
fn col2im<T: Element>(cols: &[T], g: &PatchGeometry) -> Vec<T> {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    let plane = oh * ow;
    let ncols = g.cols();
    let mut out = vec![T::default(); g.batch * g.channels * g.height * g.width];
    // One task per output plane: no two tasks write the same pixel.
    out.par_chunks_mut(g.height * g.width).enumerate().for_each(|(bc, img)| {
        let (b, c) = (bc / g.channels, bc % g.channels);
        for ki in 0..k {
            for kj in 0..k {
                let row = (c * k + ki) * k + kj;
                let src = &cols[row * ncols + b * plane..][..plane];
                for oy in 0..oh {
                    let Some(iy) = g.source(oy, ki, g.height) else { continue };
                    let irow = &mut img[iy * g.width..(iy + 1) * g.width];
                    for ox in 0..ow {
                        if let Some(ix) = g.source(ox, kj, g.width) {
                            irow[ix] += src[oy * ow + ox];
                        }
                    }
                }
            }
        }
    });
    out
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, len: usize, what: &str) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start == len => Ok(&data[start..end]),
        _ => candle_core::bail!("{what} needs a contiguous input of {len} elements, got {:?}", layout.shape()),
    }
}

/// Unfolds images into the patch matrix (see [`im2col`]).
#[derive(Clone, Copy, Debug)]
pub struct Im2Col(pub PatchGeometry);

/// Folds a patch matrix back into images, summing overlaps (see [`col2im`]).
#[derive(Clone, Copy, Debug)]
pub struct Col2Im(pub PatchGeometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let len = g.batch * g.channels * g.height * g.width;
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(im2col(contiguous(d, layout, len, "im2col")?, g)),
            CpuStorage::F64(d) => CpuStorage::F64(im2col(contiguous(d, layout, len, "im2col")?, g)),
            other => candle_core::bail!("im2col supports f32 and f64, not {:?}", other.dtype()),
        };
        Ok((out, Shape::from((g.rows(), g.cols()))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let len = g.rows() * g.cols();
        let out = match storage {
            CpuStorage::F32(d) => CpuStorage::F32(col2im(contiguous(d, layout, len, "col2im")?, g)),
            CpuStorage::F64(d) => CpuStorage::F64(col2im(contiguous(d, layout, len, "col2im")?, g)),
            other => candle_core::bail!("col2im supports f32 and f64, not {:?}", other.dtype()),
        };
        Ok((out, Shape::from((g.batch, g.channels, g.height, g.width))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Im2Col(self.0))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipelines::rng::SeededRng;

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ for every geometry: this is what makes each the other's gradient.
        for (stride, padding, dilation) in [(1, 0, 1), (2, 1, 1), (2, 2, 2), (3, 1, 1)] {
            let g = PatchGeometry { batch: 2, channels: 3, height: 7, width: 6, kernel: 3, stride, padding, dilation };
            g.validate().unwrap();
            let mut rng = SeededRng::new(4);
            let x: Vec<f64> = (0..2 * 3 * 7 * 6).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..g.rows() * g.cols()).map(|_| rng.normal()).collect();
            let lhs: f64 = im2col(&x, &g).iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(col2im(&y, &g)).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0), "{stride} {padding} {dilation}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn patches_hold_the_right_pixels() {
        // A 3×3 image 1..9, 2×2 kernel, stride 1, padding 0: four patches.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let g =
            PatchGeometry { batch: 1, channels: 1, height: 3, width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1 };
        let cols = im2col(&x, &g);
        // Row (ki, kj) = (0, 0) holds the top-left pixel of each patch.
        assert_eq!(&cols[0..4], &[1.0, 2.0, 4.0, 5.0]);
        // Row (1, 1) holds the bottom-right pixel of each patch.
        assert_eq!(&cols[12..16], &[5.0, 6.0, 8.0, 9.0]);
    }
}
