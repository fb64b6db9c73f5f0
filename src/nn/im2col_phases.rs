//! im2col and col2im for strided convolutions whose output is the input
//! divided by the stride (DCGAN's 4×4 stride-2 layers, the VAEs' down- and
//! up-sampling): the image is split once into stride² phase planes of the
//! output's size, and then every patch-matrix row is one phase plane shifted
//! by at most a few pixels. Rows become long contiguous copies instead of
//! gathers of every other pixel.
//!
//! For tap k along one axis, input index s·o + k − p lies in phase
//! (k − p) mod s at phase-plane index o + ⌊(k − p)/s⌋.

use crate::nn::im2col::PatchGeometry;
use crate::nn::matrix::Element;

/// Whether `g` splits into phase planes: stride above 1, no dilation, and
/// each side exactly stride × the output's side.
pub fn applies(g: &PatchGeometry) -> bool {
    let s = g.stride;
    s > 1 && g.dilation == 1 && g.out_height() * s == g.height && g.out_width() * s == g.width
}

/// Phase and shift of tap `k` along one axis.
fn phase(g: &PatchGeometry, k: usize) -> (usize, isize) {
    let offset = k as isize - g.padding as isize;
    let s = g.stride as isize;
    (offset.rem_euclid(s) as usize, offset.div_euclid(s))
}

/// One channel plane [h, w] → its stride² phase planes, each [oh, ow]:
/// `phases[(py·s + px)·oh·ow + y·ow + x] = plane[(y·s + py)·w + x·s + px]`.
fn split<T: Element>(g: &PatchGeometry, plane: &[T], phases: &mut [T]) {
    let (s, ow, small) = (g.stride, g.out_width(), g.out_height() * g.out_width());
    for (iy, row) in plane.chunks_exact(g.width).enumerate() {
        let (y, py) = (iy / s, iy % s);
        let at = |px: usize| (py * s + px) * small + y * ow;
        if s == 2 {
            // Even and odd pixels in one pass of pairs, which vectorises.
            let (first, second) = phases.split_at_mut(at(1));
            let (even, odd) = (&mut first[at(0)..][..ow], &mut second[..ow]);
            for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                (*e, *o) = (pair[0], pair[1]);
            }
            continue;
        }
        for px in 0..s {
            let out = &mut phases[at(px)..][..ow];
            out.iter_mut().zip(row[px..].iter().step_by(s)).for_each(|(o, &v)| *o = v);
        }
    }
}

/// The inverse of [`split`], adding into `plane`.
fn merge_add<T: Element>(g: &PatchGeometry, phases: &[T], plane: &mut [T]) {
    let (s, ow, small) = (g.stride, g.out_width(), g.out_height() * g.out_width());
    for (iy, row) in plane.chunks_exact_mut(g.width).enumerate() {
        let (y, py) = (iy / s, iy % s);
        let at = |px: usize| (py * s + px) * small + y * ow;
        if s == 2 {
            let (even, odd) = (&phases[at(0)..][..ow], &phases[at(1)..][..ow]);
            for ((pair, &e), &o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                pair[0] += e;
                pair[1] += o;
            }
            continue;
        }
        for px in 0..s {
            let src = &phases[at(px)..][..ow];
            row[px..].iter_mut().step_by(s).zip(src).for_each(|(o, &v)| *o += v);
        }
    }
}

/// The valid output range [first, last) along an axis of `n` for shift `d`.
fn valid(n: usize, d: isize) -> (usize, usize) {
    let first = (-d).clamp(0, n as isize) as usize;
    let last = (n as isize - d).clamp(first as isize, n as isize) as usize;
    (first, last)
}

/// `out[y][x] = src[y + dy][x + dx]`, zero where that falls outside [oh, ow].
fn shifted<T: Element>(src: &[T], oh: usize, ow: usize, (dy, dx): (isize, isize), out: &mut [T]) {
    let ((y0, y1), (x0, x1)) = (valid(oh, dy), valid(ow, dx));
    if y1 <= y0 || x1 <= x0 {
        out.fill(T::default());
        return;
    }
    out[..y0 * ow].fill(T::default());
    out[y1 * ow..].fill(T::default());
    // One flat copy of the valid rows; what wraps across a row end lands in
    // the invalid columns, which are zeroed afterwards.
    let from = ((y0 as isize + dy) * ow as isize + dx + x0 as isize) as usize;
    let (start, len) = (y0 * ow + x0, (y1 - y0) * ow - x0 - (ow - x1));
    out[start..start + len].copy_from_slice(&src[from..from + len]);
    if x0 > 0 || x1 < ow {
        for row in out[y0 * ow..y1 * ow].chunks_exact_mut(ow) {
            row[..x0].fill(T::default());
            row[x1..].fill(T::default());
        }
    }
}

/// `dst[y + dy][x + dx] += src[y][x]` where that lies inside [oh, ow]. The
/// entries of `src` that fall outside are zeroed first, so that the valid
/// rows are one flat, vectorised add (what wraps across a row end adds zero).
fn shifted_add<T: Element>(src: &mut [T], oh: usize, ow: usize, (dy, dx): (isize, isize), dst: &mut [T]) {
    let ((y0, y1), (x0, x1)) = (valid(oh, dy), valid(ow, dx));
    if y1 <= y0 || x1 <= x0 {
        return;
    }
    if x0 > 0 || x1 < ow {
        for row in src[y0 * ow..y1 * ow].chunks_exact_mut(ow) {
            row[..x0].fill(T::default());
            row[x1..].fill(T::default());
        }
    }
    let (from, len) = (y0 * ow + x0, (y1 - y0) * ow - x0 - (ow - x1));
    let at = (from as isize + dy * ow as isize + dx) as usize;
    dst[at..at + len].iter_mut().zip(&src[from..from + len]).for_each(|(d, &v)| *d += v);
}

/// The whole patch matrix of one image (rows `ld` apart in `dst`); `g` must satisfy [`applies`].
pub fn im2col<T: Element>(img: &[T], g: &PatchGeometry, dst: &mut [T], ld: usize) {
    let (k, oh, ow, plane) = (g.kernel, g.out_height(), g.out_width(), g.height * g.width);
    let small = oh * ow;
    let mut phases = vec![T::default(); plane];
    for (c, channel) in img.chunks_exact(plane).enumerate() {
        split(g, channel, &mut phases);
        for ki in 0..k {
            let (py, dy) = phase(g, ki);
            for kj in 0..k {
                let (px, dx) = phase(g, kj);
                let src = &phases[(py * g.stride + px) * small..][..small];
                shifted(src, oh, ow, (dy, dx), &mut dst[((c * k + ki) * k + kj) * ld..][..small]);
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of the patch matrix (rows
/// `ld` apart in `cols`) into its pixel of `img`; `g` must satisfy
/// [`applies`]. `cols` is scratch: its entries in the padding are zeroed.
pub fn col2im_add<T: Element>(cols: &mut [T], ld: usize, g: &PatchGeometry, img: &mut [T]) {
    let (k, oh, ow, plane) = (g.kernel, g.out_height(), g.out_width(), g.height * g.width);
    let small = oh * ow;
    let mut phases = vec![T::default(); plane];
    for (c, channel) in img.chunks_exact_mut(plane).enumerate() {
        phases.fill(T::default());
        for ki in 0..k {
            let (py, dy) = phase(g, ki);
            for kj in 0..k {
                let (px, dx) = phase(g, kj);
                let src = &mut cols[((c * k + ki) * k + kj) * ld..][..small];
                shifted_add(src, oh, ow, (dy, dx), &mut phases[(py * g.stride + px) * small..][..small]);
            }
        }
        merge_add(g, &phases, channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::im2col::{PatchTable, im2col_columns};

    #[test]
    fn phase_planes_give_the_same_patches_and_folds_as_the_gather() {
        // Integer-valued pixels: sums are exact in any order, so both folds must agree bit for bit.
        for (kernel, padding, stride, (height, width)) in
            [(4, 1, 2, (8, 6)), (4, 1, 2, (4, 4)), (3, 1, 2, (6, 4)), (2, 0, 2, (4, 6)), (6, 2, 3, (9, 6))]
        {
            let g = PatchGeometry { channels: 3, height, width, kernel, stride, padding, dilation: 1 };
            assert!(applies(&g), "{g:?}");
            let img: Vec<f64> = (0..g.image_len()).map(|v| (v % 17) as f64 - 8.0).collect();
            let table = PatchTable::new(&g);
            let ld = g.positions() + 3; // rows apart, as when several images share a block
            let (mut gathered, mut split) = (vec![f64::NAN; g.rows() * ld], vec![f64::NAN; g.rows() * ld]);
            im2col_columns(&img, &table, &mut gathered, ld, 0..g.positions());
            im2col(&img, &g, &mut split, ld);
            for row in 0..g.rows() {
                let (a, b) = (&gathered[row * ld..][..g.positions()], &split[row * ld..][..g.positions()]);
                assert_eq!(a, b, "{g:?} row {row}");
            }
            let cols: Vec<f64> = (0..g.rows() * ld).map(|v| (v % 13) as f64 - 6.0).collect();
            let mut reference = vec![1.0; g.image_len()];
            for row in 0..g.rows() {
                let (c, t) = (row / (kernel * kernel), row % (kernel * kernel));
                for oy in 0..g.out_height() {
                    for ox in 0..g.out_width() {
                        let iy = (oy * stride + t / kernel).checked_sub(padding).filter(|&i| i < height);
                        let ix = (ox * stride + t % kernel).checked_sub(padding).filter(|&i| i < width);
                        if let (Some(iy), Some(ix)) = (iy, ix) {
                            reference[(c * height + iy) * width + ix] += cols[row * ld + oy * g.out_width() + ox];
                        }
                    }
                }
            }
            let mut folded = vec![1.0; g.image_len()];
            col2im_add(&mut cols.clone(), ld, &g, &mut folded);
            assert_eq!(folded, reference, "{g:?}");
        }
        let odd = PatchGeometry { channels: 1, height: 7, width: 6, kernel: 3, stride: 2, padding: 1, dilation: 1 };
        assert!(!applies(&odd), "an odd side has no whole phase planes");
    }
}
