//! im2col ("unfold") and col2im ("fold") for one image on the CPU.
//!
//! With them a convolution is a GEMM: conv2d is `W · im2col(x)` and the
//! transposed convolution is `col2im(Wᵀ · x)`. The two are adjoint linear
//! maps, so each one is the other's backward pass (see `conv_op.rs`).

use std::ops::Range;

use candle_core::Result;

use crate::nn::im2col_phases;
use crate::nn::matrix::Element;

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
}

/// For every kernel tap (ki, kj), the (patch column, pixel) index pairs where
/// that tap lands inside the image: the same for every channel, so a
/// convolution builds it once and im2col/col2im become tight indexed loops
/// instead of short strided runs (7 elements for a 4×4 stride-2 kernel on 14×14).
#[derive(Clone, Debug)]
pub struct PatchTable {
    geometry: PatchGeometry,
    /// All taps' pairs, tap after tap.
    pairs: Vec<(u32, u32)>,
    /// `pairs[starts[t]..starts[t + 1]]` belong to tap t.
    starts: Vec<usize>,
}

impl PatchTable {
    /// The table of `g` (which must be valid).
    pub fn new(g: &PatchGeometry) -> Self {
        let (oh, ow, k) = (g.out_height(), g.out_width(), g.kernel);
        let mut pairs = Vec::new();
        let mut starts = vec![0];
        for ki in 0..k {
            for kj in 0..k {
                for oy in 0..oh {
                    let Some(iy) = g.source(oy, ki, g.height) else { continue };
                    for ox in 0..ow {
                        if let Some(ix) = g.source(ox, kj, g.width) {
                            pairs.push(((oy * ow + ox) as u32, (iy * g.width + ix) as u32));
                        }
                    }
                }
                starts.push(pairs.len());
            }
        }
        Self { geometry: *g, pairs, starts }
    }

    /// The geometry the table was built for.
    pub fn geometry(&self) -> &PatchGeometry {
        &self.geometry
    }

    fn tap(&self, t: usize) -> &[(u32, u32)] {
        &self.pairs[self.starts[t]..self.starts[t + 1]]
    }
}

/// One image [channels, h, w] → its patch matrix [channels·k², oh·ow]
/// (row (c, ki, kj), column (oy, ox)), written into `dst` with rows `ld`
/// apart, so that several images can fill column blocks of one matrix. Every
/// entry of the image's block is written.
pub fn im2col<T: Element>(img: &[T], table: &PatchTable, dst: &mut [T], ld: usize) {
    let g = &table.geometry;
    if im2col_phases::applies(g) {
        assert_eq!(img.len(), g.image_len(), "im2col: image size");
        assert!(ld >= g.positions() && dst.len() >= (g.rows() - 1) * ld + g.positions(), "im2col: patch matrix size");
        return im2col_phases::im2col(img, g, dst, ld);
    }
    im2col_columns(img, table, dst, ld, 0..g.positions());
}

/// The patch matrix's columns `columns` only (output positions in row-major
/// order), written from column 0 of `dst`: a band of a large image's matrix.
pub fn im2col_columns<T: Element>(img: &[T], table: &PatchTable, dst: &mut [T], ld: usize, columns: Range<usize>) {
    let g = &table.geometry;
    let (taps, plane, width) = (g.kernel * g.kernel, g.height * g.width, columns.len());
    assert_eq!(img.len(), g.image_len(), "im2col: image size");
    assert!(columns.end <= g.positions(), "im2col: columns {columns:?} beyond {}", g.positions());
    assert!(ld >= width && dst.len() >= (g.rows() - 1) * ld + width, "im2col: patch matrix size");
    for row in 0..g.rows() {
        let (c, t) = (row / taps, row % taps);
        let src = &img[c * plane..][..plane];
        let dst = &mut dst[row * ld..][..width];
        if g.stride == 1 && g.dilation == 1 {
            shifted_rows(src, g, t / g.kernel, t % g.kernel, dst, columns.clone());
            continue;
        }
        // A tap's pairs are in column order, so the band's pairs are one run.
        let pairs = table.tap(t);
        let first = pairs.partition_point(|&(p, _)| (p as usize) < columns.start);
        let last = pairs.partition_point(|&(p, _)| (p as usize) < columns.end);
        let pairs = &pairs[first..last];
        if pairs.len() < width {
            dst.fill(T::default()); // padding
        }
        for &(p, i) in pairs {
            dst[p as usize - columns.start] = src[i as usize];
        }
    }
}

/// One patch-matrix row of a stride-1, undilated convolution: for tap
/// (ki, kj) each output row reads a shifted input row, so the band is
/// contiguous copies with zeros where the tap falls in the padding.
fn shifted_rows<T: Element>(src: &[T], g: &PatchGeometry, ki: usize, kj: usize, dst: &mut [T], columns: Range<usize>) {
    let ow = g.out_width();
    let mut p = columns.start;
    while p < columns.end {
        let (oy, ox0) = (p / ow, p % ow);
        let ox1 = ow.min(ox0 + columns.end - p);
        let out = &mut dst[p - columns.start..][..ox1 - ox0];
        match (oy + ki).checked_sub(g.padding).filter(|&iy| iy < g.height) {
            None => out.fill(T::default()),
            Some(iy) => {
                // Output columns whose input column ox + kj − padding lies in [0, width).
                let first = g.padding.saturating_sub(kj).clamp(ox0, ox1);
                let last = (g.width + g.padding).saturating_sub(kj).clamp(first, ox1);
                out[..first - ox0].fill(T::default());
                out[last - ox0..].fill(T::default());
                if last > first {
                    let from = iy * g.width + first + kj - g.padding;
                    out[first - ox0..last - ox0].copy_from_slice(&src[from..from + last - first]);
                }
            }
        }
        p += ox1 - ox0;
    }
}

/// The adjoint of [`im2col`]: adds every entry of one image's patch matrix
/// (rows `ld` apart in `cols`) into its pixel of `img` [channels, h, w].
/// `cols` is scratch: entries that fall in the padding may be zeroed.
pub fn col2im_add<T: Element>(cols: &mut [T], ld: usize, table: &PatchTable, img: &mut [T]) {
    let g = &table.geometry;
    let (positions, taps, plane) = (g.positions(), g.kernel * g.kernel, g.height * g.width);
    assert_eq!(img.len(), g.image_len(), "col2im: image size");
    assert!(ld >= positions && cols.len() >= (g.rows() - 1) * ld + positions, "col2im: patch matrix size");
    if im2col_phases::applies(g) {
        return im2col_phases::col2im_add(cols, ld, g, img);
    }
    for row in 0..g.rows() {
        let (c, t) = (row / taps, row % taps);
        let src = &cols[row * ld..][..positions];
        let dst = &mut img[c * plane..][..plane];
        for &(p, i) in table.tap(t) {
            dst[i as usize] += src[p as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::SeededRng;

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ for every geometry: this is what makes each the other's gradient.
        for (stride, padding, dilation) in [(1, 0, 1), (2, 1, 1), (2, 2, 2), (3, 1, 1)] {
            let g = PatchGeometry { channels: 3, height: 7, width: 6, kernel: 3, stride, padding, dilation };
            g.validate().unwrap();
            let mut rng = SeededRng::new(4);
            let x: Vec<f64> = (0..g.image_len()).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..g.rows() * g.positions()).map(|_| rng.normal()).collect();
            let table = PatchTable::new(&g);
            let mut cols = vec![f64::NAN; y.len()]; // im2col must overwrite every entry
            im2col(&x, &table, &mut cols, g.positions());
            let mut folded = vec![0.0; x.len()];
            col2im_add(&mut y.clone(), g.positions(), &table, &mut folded);
            let lhs: f64 = cols.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&folded).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0), "{stride} {padding} {dilation}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn a_band_of_columns_equals_those_columns_of_the_whole_matrix() {
        // Padding wider than the kernel: some output columns see only padding.
        let g = PatchGeometry { channels: 2, height: 9, width: 7, kernel: 3, stride: 1, padding: 4, dilation: 1 };
        let x: Vec<f64> = (0..g.image_len()).map(|v| v as f64 + 1.0).collect();
        let table = PatchTable::new(&g);
        // The reference: each patch-matrix entry straight from the definition.
        let (oh, ow) = (g.out_height(), g.out_width());
        let mut whole = vec![0.0; g.rows() * g.positions()];
        for c in 0..2 {
            for (ki, kj) in (0..3).flat_map(|ki| (0..3).map(move |kj| (ki, kj))) {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let (iy, ix) = ((oy + ki) as isize - 4, (ox + kj) as isize - 4);
                    if (0..9).contains(&iy) && (0..7).contains(&ix) {
                        whole[(c * 9 + ki * 3 + kj) * g.positions() + oy * ow + ox] =
                            x[c * 63 + iy as usize * 7 + ix as usize];
                    }
                }
            }
        }
        for band in [0..10, 10..63, 20..21, 6..8] {
            let mut part = vec![f64::NAN; g.rows() * band.len()];
            im2col_columns(&x, &table, &mut part, band.len(), band.clone());
            for row in 0..g.rows() {
                assert_eq!(
                    &part[row * band.len()..][..band.len()],
                    &whole[row * g.positions() + band.start..][..band.len()]
                );
            }
        }
    }

    #[test]
    fn patches_hold_the_right_pixels() {
        // A 3×3 image 1..9, 2×2 kernel, stride 1, padding 0: four patches.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let g = PatchGeometry { channels: 1, height: 3, width: 3, kernel: 2, stride: 1, padding: 0, dilation: 1 };
        let mut cols = vec![0.0; 16];
        im2col(&x, &PatchTable::new(&g), &mut cols, 4);
        // Row (ki, kj) = (0, 0) holds the top-left pixel of each patch.
        assert_eq!(&cols[0..4], &[1.0, 2.0, 4.0, 5.0]);
        // Row (1, 1) holds the bottom-right pixel of each patch.
        assert_eq!(&cols[12..16], &[5.0, 6.0, 8.0, 9.0]);
    }
}
