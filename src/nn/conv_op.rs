//! conv2d and conv_transpose2d (+ bias, + optional ReLU) as one candle custom
//! op on the CPU (through `layer_op.rs`). Forward and the whole backward pass (input, weight and bias
//! gradients) are direct GEMM calls around im2col/col2im, parallel over the
//! batch, with no intermediate candle tensors: candle's generic matmul
//! backward, transposes and broadcasts cost ten times the GEMM work here.
//!
//! Both ops relate a *feature* tensor [batch, features, positions] and an
//! *image* tensor [batch, channels, h, w] through one weight matrix W
//! [features, channels·k²] (`PatchGeometry` describes the image side):
//! conv2d maps image → features as `W · im2col(img)`, the transposed
//! convolution maps features → image as `col2im(Wᵀ · feat)`. Each is the
//! other's input gradient, and both share `dW = Σ feat · im2col(img)ᵀ`.

use candle_core::{Result, Shape};
use rayon::prelude::*;

use crate::nn::epilogue::{Activation, Epilogue, activation_mask_and_channel_sums};
use crate::nn::im2col::{PatchGeometry, PatchTable, col2im_add, im2col, im2col_columns};
use crate::nn::layer_op::{LayerKernels, Wanted};
use crate::nn::matrix::{Element, MatRef, Threads, matmul};

/// Which direction the op maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// conv2d: input is the image side, output the feature side.
    Conv,
    /// conv_transpose2d: input is the feature side, output the image side.
    Transposed,
}

/// A convolution with bias and an activation, applied to (x, weight, bias).
#[derive(Clone, Copy, Debug)]
pub struct ConvOp {
    /// conv2d or its transpose.
    pub kind: ConvKind,
    /// The image side: for conv2d the input, for the transpose the output.
    pub geometry: PatchGeometry,
    /// Output channels of a conv2d / input channels of a transpose: rows of W.
    pub features: usize,
    /// Applied to the output.
    pub activation: Activation,
}

/// Shapes of one call, checked against the tensors.
struct Sizes {
    batch: usize,
    /// Elements of one feature-side item: features × positions.
    feat: usize,
    /// Elements of one image-side item.
    img: usize,
}

impl ConvOp {
    fn sizes(&self, x_len: usize) -> Sizes {
        let g = &self.geometry;
        let (feat, img) = (self.features * g.positions(), g.image_len());
        let per_item = match self.kind {
            ConvKind::Conv => img,
            ConvKind::Transposed => feat,
        };
        Sizes { batch: x_len / per_item.max(1), feat, img }
    }

    /// Output shape for a batch.
    fn out_shape(&self, batch: usize) -> Shape {
        let g = &self.geometry;
        match self.kind {
            ConvKind::Conv => Shape::from((batch, self.features, g.out_height(), g.out_width())),
            ConvKind::Transposed => Shape::from((batch, g.channels, g.height, g.width)),
        }
    }

    /// Elements per output channel of one item.
    fn out_plane(&self) -> usize {
        let g = &self.geometry;
        match self.kind {
            ConvKind::Conv => g.positions(),
            ConvKind::Transposed => g.height * g.width,
        }
    }

    /// Channels of the output (the bias length).
    fn out_channels(&self) -> usize {
        match self.kind {
            ConvKind::Conv => self.features,
            ConvKind::Transposed => self.geometry.channels,
        }
    }
}

impl LayerKernels for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            ConvKind::Conv => "conv2d-gemm",
            ConvKind::Transposed => "conv-transpose2d-gemm",
        }
    }

    fn forward<T: Element>(&self, x: &[T], x_shape: &Shape, w: &[T], b: &[T]) -> Result<(Vec<T>, Shape)> {
        let g = &self.geometry;
        let s = self.sizes(x.len());
        let expected_x = s.batch * if self.kind == ConvKind::Conv { s.img } else { s.feat };
        if x.len() != expected_x || x.is_empty() {
            candle_core::bail!("{}: input of {} elements does not fit {g:?}", self.name(), x.len());
        }
        if w.len() != self.features * g.rows() {
            candle_core::bail!(
                "{}: weight has {} elements, expected {}",
                self.name(),
                w.len(),
                self.features * g.rows()
            );
        }
        if b.len() != self.out_channels() {
            candle_core::bail!("{}: bias has {} elements, expected {}", self.name(), b.len(), self.out_channels());
        }
        let epilogue = Epilogue { bias: Some(b), activation: self.activation };
        let batch = x_shape.dims().first().copied().unwrap_or(0);
        let y = match self.kind {
            ConvKind::Conv => {
                let mut feat = vec![T::default(); s.batch * s.feat];
                unfold_mul(w, self.features, x, &PatchTable::new(g), &mut feat, epilogue);
                feat
            }
            ConvKind::Transposed => {
                let mut img = vec![T::default(); s.batch * s.img];
                fold_mul(w, self.features, x, &PatchTable::new(g), &mut img, epilogue);
                img
            }
        };
        Ok((y, self.out_shape(batch)))
    }

    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        _b: &[T],
        y: &[T],
        dy: &[T],
        wanted: Wanted,
    ) -> (Option<Vec<T>>, Option<Vec<T>>, Vec<T>) {
        let (masked, db) =
            activation_mask_and_channel_sums(dy, y, self.activation, self.out_channels(), self.out_plane());
        let dy = masked.as_deref().unwrap_or(dy);
        let table = PatchTable::new(&self.geometry);
        let (dx, dw) = gradients(self.kind, w, self.features, x, dy, &table, wanted);
        (dx, dw, db)
    }
}

/// How one call splits its batch: tasks of `per_task` images run in
/// parallel, each multiplying blocks of `block` images at a time.
struct Plan {
    /// Rows of one image's patch matrix (channels·k²).
    rows: usize,
    /// Columns of one image's patch matrix (output positions).
    positions: usize,
    /// Elements of one image-side item.
    img_len: usize,
    /// Elements of one feature-side item.
    feat_len: usize,
    per_task: usize,
    /// With fewer images than threads, the GEMMs themselves are split instead.
    threads: Threads,
    block: usize,
}

impl Plan {
    fn new(table: &PatchTable, features: usize, batch: usize) -> Self {
        // More columns per GEMM make the products faster (83 → 101 GFLOP/s
        // per core for conv2 of the VAE), but a block should stay in a 1 MB L2.
        const BLOCK_ELEMENTS: usize = 1 << 17; // 512 KiB of f32
        let g = table.geometry();
        let (rows, positions) = (g.rows(), g.positions());
        let pool = rayon::current_num_threads().max(1);
        let (per_task, threads) = if batch >= pool { (batch.div_ceil(pool), Threads::One) } else { (1, Threads::Pool) };
        let block = (BLOCK_ELEMENTS / (rows * positions).max(1)).clamp(1, per_task);
        Self { rows, positions, img_len: g.image_len(), feat_len: features * positions, per_task, threads, block }
    }

    /// Scratch elements per task: a block's patch matrix and its feature block.
    fn scratch_len(&self, features: usize) -> usize {
        self.block * self.positions * (self.rows + features)
    }
}

/// Copies items [n][features][positions] into a block [features][n·positions].
fn gather<T: Element>(items: &[T], features: usize, positions: usize, block: &mut [T]) {
    let ld = items.len() / features;
    for (j, item) in items.chunks_exact(features * positions).enumerate() {
        for (f, row) in item.chunks_exact(positions).enumerate() {
            block[f * ld + j * positions..][..positions].copy_from_slice(row);
        }
    }
}

/// The inverse of [`gather`]: block [features][n·positions] → items [n][features][positions].
fn scatter<T: Element>(block: &[T], features: usize, positions: usize, items: &mut [T]) {
    let ld = items.len() / features;
    for (j, item) in items.chunks_exact_mut(features * positions).enumerate() {
        for (f, row) in item.chunks_exact_mut(positions).enumerate() {
            row.copy_from_slice(&block[f * ld + j * positions..][..positions]);
        }
    }
}

/// `feat_b = W · im2col(img_b)` for every item b, then the epilogue.
fn unfold_mul<T: Element>(
    w: &[T],
    features: usize,
    img: &[T],
    table: &PatchTable,
    feat: &mut [T],
    epilogue: Epilogue<T>,
) {
    let p = Plan::new(table, features, img.len() / table.geometry().image_len());
    let (rows, positions, img_len, feat_len, nb, threads) =
        (p.rows, p.positions, p.img_len, p.feat_len, p.block, p.threads);
    let wm = MatRef::new(w, features, rows);
    if rows * positions > BANDED_ELEMENTS {
        if threads == Threads::Pool {
            for (feat, img) in feat.chunks_mut(feat_len).zip(img.chunks(img_len)) {
                unfold_mul_banded(wm, img, table, feat, epilogue);
            }
        } else {
            unfold_mul_per_task_bands(wm, features, img, table, feat, p.per_task, epilogue);
        }
        return;
    }
    feat.par_chunks_mut(p.per_task * feat_len).zip(img.par_chunks(p.per_task * img_len)).for_each(|(feat, img)| {
        T::with_scratch(p.scratch_len(features), |scratch| {
            let (cols, out) = scratch.split_at_mut(nb * positions * rows);
            for (feat, img) in feat.chunks_mut(nb * feat_len).zip(img.chunks(nb * img_len)) {
                let ld = img.len() / img_len * positions;
                for (j, i) in img.chunks_exact(img_len).enumerate() {
                    im2col(i, table, &mut cols[j * positions..], ld);
                }
                matmul(out, ld, wm, MatRef::new(cols, rows, ld), false, threads);
                for (j, item) in feat.chunks_exact_mut(feat_len).enumerate() {
                    for (f, row) in item.chunks_exact_mut(positions).enumerate() {
                        epilogue.copy_row(row, &out[f * ld + j * positions..][..positions], f);
                    }
                }
            }
        })
    });
}

/// Patch matrices above this many elements (4 MiB of f32) are split into
/// column bands: in parallel when there are fewer images than threads, else
/// one band after another within each task.
const BANDED_ELEMENTS: usize = 1 << 20;

/// Output positions per band of a task's own banded product: enough columns
/// for the GEMM to run at full speed, few enough that the patch band stays
/// near `BANDED_ELEMENTS` (a whole 64×64 patch matrix of SD's widest
/// up-block convolution is 141 MB, held by every thread).
fn task_band_width(rows: usize) -> usize {
    (BANDED_ELEMENTS / rows.max(1)).clamp(128, 1024).next_multiple_of(16)
}

/// `feat_b = W · im2col(img_b)` for large images with at least one per
/// thread: each task walks its images band by band of output positions, so
/// its scratch is one band's patch matrix and product, not a whole image's.
fn unfold_mul_per_task_bands<T: Element>(
    wm: MatRef<T>,
    features: usize,
    img: &[T],
    table: &PatchTable,
    feat: &mut [T],
    per_task: usize,
    epilogue: Epilogue<T>,
) {
    let g = table.geometry();
    let (rows, positions, img_len) = (g.rows(), g.positions(), g.image_len());
    let feat_len = features * positions;
    let band = task_band_width(rows).min(positions);
    feat.par_chunks_mut(per_task * feat_len).zip(img.par_chunks(per_task * img_len)).for_each(|(feat, img)| {
        T::with_scratch(band * (rows + features), |scratch| {
            let (cols, out) = scratch.split_at_mut(band * rows);
            for (feat, img) in feat.chunks_exact_mut(feat_len).zip(img.chunks_exact(img_len)) {
                for start in (0..positions).step_by(band) {
                    let columns = start..(start + band).min(positions);
                    let width = columns.len();
                    im2col_columns(img, table, cols, width, columns.clone());
                    matmul(out, width, wm, MatRef::new(&cols[..rows * width], rows, width), false, Threads::One);
                    for (f, row) in feat.chunks_exact_mut(positions).enumerate() {
                        epilogue.copy_row(&mut row[columns.clone()], &out[f * width..][..width], f);
                    }
                }
            }
        })
    });
}

/// `feat = W · im2col(img)` for one large image, in bands of output positions
/// that run in parallel: each band's patch matrix stays small (a 256×256
/// decoder layer's whole one is 150 MB) and the im2col work is shared out too.
fn unfold_mul_banded<T: Element>(wm: MatRef<T>, img: &[T], table: &PatchTable, feat: &mut [T], epilogue: Epilogue<T>) {
    let (rows, positions) = (table.geometry().rows(), table.geometry().positions());
    let features = feat.len() / positions;
    let band = (BANDED_ELEMENTS / 4 / rows).max(64);
    let bands: Vec<std::ops::Range<usize>> =
        (0..positions).step_by(band).map(|start| start..(start + band).min(positions)).collect();
    // A few bands per thread at a time: their products, not the whole
    // output's worth (268 MB for the 512×512 decoder's widest layer), wait
    // to be copied into place.
    let wave = 4 * rayon::current_num_threads().max(1);
    for bands in bands.chunks(wave) {
        let products: Vec<Vec<T>> = bands
            .par_iter()
            .map(|columns| {
                let width = columns.len();
                let mut out = vec![T::default(); features * width];
                T::with_scratch(rows * width, |cols| {
                    im2col_columns(img, table, cols, width, columns.clone());
                    matmul(&mut out, width, wm, MatRef::new(cols, rows, width), false, Threads::One);
                });
                out
            })
            .collect();
        feat.par_chunks_mut(positions).enumerate().for_each(|(f, row)| {
            for (columns, out) in bands.iter().zip(&products) {
                epilogue.copy_row(&mut row[columns.clone()], &out[f * columns.len()..][..columns.len()], f);
            }
        });
    }
}

/// `img_b = col2im(Wᵀ · feat_b)` for every item b (`img` starts at zero), then the epilogue.
fn fold_mul<T: Element>(
    w: &[T],
    features: usize,
    feat: &[T],
    table: &PatchTable,
    img: &mut [T],
    epilogue: Epilogue<T>,
) {
    let p = Plan::new(table, features, img.len() / table.geometry().image_len());
    let (rows, positions, img_len, feat_len, nb, threads) =
        (p.rows, p.positions, p.img_len, p.feat_len, p.block, p.threads);
    let wt = MatRef::new(w, features, rows).t();
    img.par_chunks_mut(p.per_task * img_len).zip(feat.par_chunks(p.per_task * feat_len)).for_each(|(img, feat)| {
        T::with_scratch(p.scratch_len(features), |scratch| {
            let (cols, block) = scratch.split_at_mut(nb * positions * rows);
            for (img, feat) in img.chunks_mut(nb * img_len).zip(feat.chunks(nb * feat_len)) {
                let ld = feat.len() / feat_len * positions;
                gather(feat, features, positions, block);
                matmul(cols, ld, wt, MatRef::new(block, features, ld), false, threads);
                for (j, i) in img.chunks_exact_mut(img_len).enumerate() {
                    epilogue.add_bias(i);
                    col2im_add(&mut cols[j * positions..], ld, table, i);
                    epilogue.activate(i);
                }
            }
        })
    });
}

/// `dW = Σ_b feat_b · im2col(img_b)ᵀ` and the input gradient, each when
/// `wanted`, in one pass over the batch: each block's patch matrix is built
/// once and feeds both products (and is not built when neither needs it).
/// Returns (dx, dW).
fn gradients<T: Element>(
    kind: ConvKind,
    w: &[T],
    features: usize,
    x: &[T],
    dy: &[T],
    table: &PatchTable,
    wanted: Wanted,
) -> (Option<Vec<T>>, Option<Vec<T>>) {
    let want_dx = wanted.dx;
    // conv2d's dx comes from Wᵀ·dy alone; the transpose's needs the patch matrix of dy.
    let patches = wanted.dw || (want_dx && kind == ConvKind::Transposed);
    let img_len = table.geometry().image_len();
    // conv2d: x is the image side and dy the feature side; the transpose swaps them.
    let (img, feat) = match kind {
        ConvKind::Conv => (x, dy),
        ConvKind::Transposed => (dy, x),
    };
    let batch = img.len() / img_len;
    let p = Plan::new(table, features, batch);
    let (rows, positions, feat_len, nb, threads, per_task) =
        (p.rows, p.positions, p.feat_len, p.block, p.threads, p.per_task);
    let x_len = if kind == ConvKind::Conv { img_len } else { feat_len };
    let tasks = batch.div_ceil(per_task);
    let mut dx = if want_dx { vec![T::default(); batch * x_len] } else { Vec::new() };
    let dx_parts: Vec<Option<&mut [T]>> =
        if want_dx { dx.chunks_mut(per_task * x_len).map(Some).collect() } else { (0..tasks).map(|_| None).collect() };
    let wm = MatRef::new(w, features, rows);
    let partials: Vec<Vec<T>> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(task, mut dx)| {
            // Empty when not wanted: nothing is accumulated into it.
            let mut dw = if wanted.dw { vec![T::default(); features * rows] } else { Vec::new() };
            let items = task * per_task..((task + 1) * per_task).min(batch);
            T::with_scratch(p.scratch_len(features), |scratch| {
                let (cols, block) = scratch.split_at_mut(nb * positions * rows);
                for (first, start) in items.clone().step_by(nb).enumerate() {
                    let n = nb.min(items.end - start);
                    let ld = n * positions;
                    if patches {
                        for j in 0..n {
                            im2col(&img[(start + j) * img_len..][..img_len], table, &mut cols[j * positions..], ld);
                        }
                    }
                    let block = &mut block[..features * ld];
                    gather(&feat[start * feat_len..][..n * feat_len], features, positions, block);
                    let cm = MatRef::new(&cols[..rows * ld], rows, ld);
                    if wanted.dw {
                        matmul(&mut dw, rows, MatRef::new(block, features, ld), cm.t(), first > 0, threads);
                    }
                    let Some(dx) = dx.as_deref_mut() else { continue };
                    let dx = &mut dx[(start - items.start) * x_len..][..n * x_len];
                    match kind {
                        // dx_b = col2im(Wᵀ · dy_b), reusing the patch buffer.
                        ConvKind::Conv => {
                            matmul(cols, ld, wm.t(), MatRef::new(block, features, ld), false, threads);
                            for (j, dx_b) in dx.chunks_exact_mut(x_len).enumerate() {
                                col2im_add(&mut cols[j * positions..], ld, table, dx_b);
                            }
                        }
                        // dx_b = W · im2col(dy_b), through the feature block.
                        ConvKind::Transposed => {
                            matmul(block, ld, wm, cm, false, threads);
                            scatter(block, features, positions, dx);
                        }
                    }
                }
            });
            dw
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![T::default(); features * rows]);
    if !wanted.dw {
        return (want_dx.then_some(dx), None);
    }
    for p in partials {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    (want_dx.then_some(dx), wanted.dw.then_some(dw))
}
