//! conv2d and conv_transpose2d (+ bias, + optional ReLU) as one candle custom
//! op on the CPU. Forward and the whole backward pass (input, weight and bias
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

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::epilogue::{Epilogue, relu_mask_and_channel_sums};
use super::matrix::{Element, MatRef, Threads, contiguous, cpu_slice, matmul};
use super::unfold::{PatchGeometry, PatchTable, col2im_add, im2col};

/// Which direction the op maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// conv2d: input is the image side, output the feature side.
    Conv,
    /// conv_transpose2d: input is the feature side, output the image side.
    Transposed,
}

/// A convolution with bias and optional ReLU, applied to (x, weight, bias).
#[derive(Clone, Copy, Debug)]
pub struct ConvOp {
    /// conv2d or its transpose.
    pub kind: ConvKind,
    /// The image side: for conv2d the input, for the transpose the output.
    pub geometry: PatchGeometry,
    /// Output channels of a conv2d / input channels of a transpose: rows of W.
    pub features: usize,
    /// Apply max(0, ·) to the output.
    pub relu: bool,
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

    fn forward<T: Element>(&self, x: &[T], w: &[T], b: &[T]) -> Result<Vec<T>> {
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
        let epilogue = Epilogue { bias: Some(b), relu: self.relu };
        Ok(match self.kind {
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
        })
    }

    /// (dx, dW, db) from the output gradient `dy`; `dx` only when `want_dx`.
    fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        y: &[T],
        dy: &[T],
        want_dx: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let (masked, db) =
            relu_mask_and_channel_sums(dy, self.relu.then_some(y), self.out_channels(), self.out_plane());
        let dy = masked.as_deref().unwrap_or(dy);
        let table = PatchTable::new(&self.geometry);
        let (dx, dw) = gradients(self.kind, w, self.features, x, dy, &table, want_dx);
        (dx, dw, db)
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

/// Items per parallel task and how each task's GEMMs use threads: with fewer
/// items than threads, the GEMMs themselves are split instead.
fn split(batch: usize) -> (usize, Threads) {
    let threads = rayon::current_num_threads().max(1);
    if batch >= threads { (batch.div_ceil(threads), Threads::One) } else { (1, Threads::Pool) }
}

/// Items whose patch matrices share one GEMM: more columns make the products
/// faster (83 → 101 GFLOP/s per core for conv2 of the VAE), but the block
/// should stay within a 1 MB L2 cache.
fn block_items(rows: usize, positions: usize, per_task: usize) -> usize {
    const BLOCK_ELEMENTS: usize = 1 << 17; // 512 KiB of f32
    (BLOCK_ELEMENTS / (rows * positions).max(1)).clamp(1, per_task.max(1))
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
    let g = table.geometry();
    let (rows, positions, img_len) = (g.rows(), g.positions(), g.image_len());
    let feat_len = features * positions;
    let (per_task, threads) = split(img.len() / img_len);
    let nb = block_items(rows, positions, per_task);
    let wm = MatRef::new(w, features, rows);
    feat.par_chunks_mut(per_task * feat_len).zip(img.par_chunks(per_task * img_len)).for_each(|(feat, img)| {
        T::with_scratch(nb * positions * (rows + features), |scratch| {
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

/// `img_b = col2im(Wᵀ · feat_b)` for every item b (`img` starts at zero), then the epilogue.
fn fold_mul<T: Element>(
    w: &[T],
    features: usize,
    feat: &[T],
    table: &PatchTable,
    img: &mut [T],
    epilogue: Epilogue<T>,
) {
    let g = table.geometry();
    let (rows, positions, img_len) = (g.rows(), g.positions(), g.image_len());
    let feat_len = features * positions;
    let (per_task, threads) = split(img.len() / img_len);
    let nb = block_items(rows, positions, per_task);
    let wt = MatRef::new(w, features, rows).t();
    img.par_chunks_mut(per_task * img_len).zip(feat.par_chunks(per_task * feat_len)).for_each(|(img, feat)| {
        T::with_scratch(nb * positions * (rows + features), |scratch| {
            let (cols, block) = scratch.split_at_mut(nb * positions * rows);
            for (img, feat) in img.chunks_mut(nb * img_len).zip(feat.chunks(nb * feat_len)) {
                let ld = feat.len() / feat_len * positions;
                gather(feat, features, positions, block);
                matmul(cols, ld, wt, MatRef::new(block, features, ld), false, threads);
                for (j, i) in img.chunks_exact_mut(img_len).enumerate() {
                    epilogue.add_bias(i);
                    col2im_add(&cols[j * positions..], ld, table, i);
                    epilogue.relu(i);
                }
            }
        })
    });
}

/// `dW = Σ_b feat_b · im2col(img_b)ᵀ` and, when asked, the input gradient,
/// in one pass over the batch: each block's patch matrix is built once and
/// feeds both products. Returns (dx, dW).
fn gradients<T: Element>(
    kind: ConvKind,
    w: &[T],
    features: usize,
    x: &[T],
    dy: &[T],
    table: &PatchTable,
    want_dx: bool,
) -> (Option<Vec<T>>, Vec<T>) {
    let g = table.geometry();
    let (rows, positions, img_len) = (g.rows(), g.positions(), g.image_len());
    let feat_len = features * positions;
    // conv2d: x is the image side and dy the feature side; the transpose swaps them.
    let (img, feat, x_len) = match kind {
        ConvKind::Conv => (x, dy, img_len),
        ConvKind::Transposed => (dy, x, feat_len),
    };
    let batch = img.len() / img_len;
    let (per_task, threads) = split(batch);
    let nb = block_items(rows, positions, per_task);
    let tasks = batch.div_ceil(per_task);
    let mut dx = if want_dx { vec![T::default(); batch * x_len] } else { Vec::new() };
    let dx_parts: Vec<Option<&mut [T]>> =
        if want_dx { dx.chunks_mut(per_task * x_len).map(Some).collect() } else { (0..tasks).map(|_| None).collect() };
    let wm = MatRef::new(w, features, rows);
    let partials: Vec<Vec<T>> = dx_parts
        .into_par_iter()
        .enumerate()
        .map(|(task, mut dx)| {
            let mut dw = vec![T::default(); features * rows];
            let items = task * per_task..((task + 1) * per_task).min(batch);
            T::with_scratch(nb * positions * (rows + features), |scratch| {
                let (cols, block) = scratch.split_at_mut(nb * positions * rows);
                for (first, start) in items.clone().step_by(nb).enumerate() {
                    let n = nb.min(items.end - start);
                    let ld = n * positions;
                    for j in 0..n {
                        im2col(&img[(start + j) * img_len..][..img_len], table, &mut cols[j * positions..], ld);
                    }
                    let block = &mut block[..features * ld];
                    gather(&feat[start * feat_len..][..n * feat_len], features, positions, block);
                    let cm = MatRef::new(&cols[..rows * ld], rows, ld);
                    matmul(&mut dw, rows, MatRef::new(block, features, ld), cm.t(), first > 0, threads);
                    let Some(dx) = dx.as_deref_mut() else { continue };
                    let dx = &mut dx[(start - items.start) * x_len..][..n * x_len];
                    match kind {
                        // dx_b = col2im(Wᵀ · dy_b), reusing the patch buffer.
                        ConvKind::Conv => {
                            matmul(cols, ld, wm.t(), MatRef::new(block, features, ld), false, threads);
                            for (j, dx_b) in dx.chunks_exact_mut(x_len).enumerate() {
                                col2im_add(&cols[j * positions..], ld, table, dx_b);
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
    for p in partials {
        dw.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    (want_dx.then_some(dx), dw)
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            ConvKind::Conv => "conv2d-gemm",
            ConvKind::Transposed => "conv-transpose2d-gemm",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                CpuStorage::F32(self.forward(contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?)?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(self.forward(contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?)?)
            }
            _ => candle_core::bail!("{} supports f32 and f64 inputs of one dtype", self.name()),
        };
        let batch = l1.shape().dims().first().copied().unwrap_or(0);
        Ok((out, self.out_shape(batch)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        match x.dtype() {
            DType::F32 => self.backward_tensors::<f32>(x, w, b, y, dy),
            DType::F64 => self.backward_tensors::<f64>(x, w, b, y, dy),
            other => candle_core::bail!("{}: no backward pass for {other:?}", self.name()),
        }
    }
}

impl ConvOp {
    fn backward_tensors<T: Element>(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (ys, yl) = y.storage_and_layout();
        let (dys, dyl) = dy.storage_and_layout();
        let (dx, dw, db) = self.backward::<T>(
            cpu_slice(&xs, xl)?,
            cpu_slice(&ws, wl)?,
            cpu_slice(&ys, yl)?,
            cpu_slice(&dys, dyl)?,
            x.track_op(),
        );
        let dx = dx.map(|dx| Tensor::from_vec(dx, x.shape(), x.device())).transpose()?;
        Ok((dx, Some(Tensor::from_vec(dw, w.shape(), w.device())?), Some(Tensor::from_vec(db, b.shape(), b.device())?)))
    }
}
