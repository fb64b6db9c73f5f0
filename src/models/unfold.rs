//! im2col ("unfold") and col2im ("fold") for one image on the CPU.
//!
//! With them a convolution is a GEMM: conv2d is `W · im2col(x)` and the
//! transposed convolution is `col2im(Wᵀ · x)`. The two are adjoint linear
//! maps, so each one is the other's backward pass (see `conv_op.rs`).

use candle_core::Result;

use super::matrix::Element;

/// Where the patches of a convolution come from, for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchGeometry {
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

    /// Output positions per image (columns of one image's patch matrix).
    pub fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }

    /// Elements of one image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The output indices `lo..hi` whose tap `t` lands inside an image side of `size`.
    fn valid_range(&self, t: usize, size: usize, outputs: usize) -> (usize, usize) {
        let offset = t * self.dilation; // input = o·stride + offset − padding
        let lo = self.padding.saturating_sub(offset).div_ceil(self.stride);
        let hi = (size + self.padding).saturating_sub(offset).div_ceil(self.stride).min(outputs);
        (lo.min(hi), hi)
    }
}

/// One image [channels, h, w] → its patch matrix `dst` [channels·k², oh·ow]:
/// row (c, ki, kj), column (oy, ox). Every entry of `dst` is written.
pub fn im2col<T: Element>(img: &[T], g: &PatchGeometry, dst: &mut [T]) {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    assert_eq!(img.len(), g.image_len(), "im2col: image size");
    assert_eq!(dst.len(), g.rows() * oh * ow, "im2col: patch matrix size");
    for (row, dst) in dst.chunks_exact_mut(oh * ow).enumerate() {
        let (c, ki, kj) = (row / (k * k), (row / k) % k, row % k);
        let plane = &img[c * g.height * g.width..][..g.height * g.width];
        let (x_lo, x_hi) = g.valid_range(kj, g.width, ow);
        for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
            let Some(iy) = g.source(oy, ki, g.height) else {
                drow.fill(T::default());
                continue;
            };
            let srow = &plane[iy * g.width..(iy + 1) * g.width];
            drow[..x_lo].fill(T::default());
            drow[x_hi..].fill(T::default());
            if x_lo == x_hi {
                continue;
            }
            let first = x_lo * g.stride + kj * g.dilation - g.padding;
            let taps = srow[first..].iter().step_by(g.stride);
            drow[x_lo..x_hi].iter_mut().zip(taps).for_each(|(d, &s)| *d = s);
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `cols` [channels·k², oh·ow]
/// into its pixel of `img` [channels, h, w].
pub fn col2im_add<T: Element>(cols: &[T], g: &PatchGeometry, img: &mut [T]) {
    let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
    assert_eq!(img.len(), g.image_len(), "col2im: image size");
    assert_eq!(cols.len(), g.rows() * oh * ow, "col2im: patch matrix size");
    for (row, src) in cols.chunks_exact(oh * ow).enumerate() {
        let (c, ki, kj) = (row / (k * k), (row / k) % k, row % k);
        let plane = &mut img[c * g.height * g.width..][..g.height * g.width];
        let (x_lo, x_hi) = g.valid_range(kj, g.width, ow);
        for (oy, srow) in src.chunks_exact(ow).enumerate() {
            let Some(iy) = g.source(oy, ki, g.height).filter(|_| x_lo < x_hi) else { continue };
            let irow = &mut plane[iy * g.width..(iy + 1) * g.width];
            let first = x_lo * g.stride + kj * g.dilation - g.padding;
            let taps = irow[first..].iter_mut().step_by(g.stride);
            taps.zip(&srow[x_lo..x_hi]).for_each(|(d, &s)| *d += s);
        }
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
            let g = PatchGeometry { channels: 3, height: 7, width: 6, kernel: 3, stride, padding, dilation };
            g.validate().unwrap();
            let mut rng = SeededRng::new(4);
            let x: Vec<f64> = (0..g.image_len()).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..g.rows() * g.positions()).map(|_| rng.normal()).collect();
            let mut cols = vec![f64::NAN; y.len()]; // im2col must overwrite every entry
            im2col(&x, &g, &mut cols);
            let mut folded = vec![0.0; x.len()];
            col2im_add(&y, &g, &mut folded);
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&folded).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0), "{stride} {padding} {dilation}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn patches_hold_the_right_pixels() {
        // A 3×3 image 1..9, 2×2 kernel, stride 1, padding 0: four patches.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let g =
            PatchGeometry { channels: 1, height: 3, width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1 };
        let mut cols = vec![0.0; 16];
        im2col(&x, &g, &mut cols);
        // Row (ki, kj) = (0, 0) holds the top-left pixel of each patch.
        assert_eq!(&cols[0..4], &[1.0, 2.0, 4.0, 5.0]);
        // Row (1, 1) holds the bottom-right pixel of each patch.
        assert_eq!(&cols[12..16], &[5.0, 6.0, 8.0, 9.0]);
    }
}
