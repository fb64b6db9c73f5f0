//! Half-precision weights (f16/bf16 checkpoints) widened to f32 for the
//! moment a layer multiplies. Loaded weights stay half in memory (half the
//! bytes); each layer widens its own weight just before its GEMM. On the
//! CPU the GEMM layers (`layer_op`) widen into one buffer per thread that
//! is reused from layer to layer: SD's U-Net widens up to 118 MB per layer
//! at every step, and fresh buffers that large are mapped from the kernel
//! and faulted in again each time.

use std::cell::RefCell;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use crate::nn::matrix::contiguous;

/// `weight` in `dtype`, as a tensor of its own (for candle's kernels and other devices).
pub fn widened(weight: &Tensor, dtype: DType) -> Result<Tensor> {
    if weight.dtype() == dtype {
        return Ok(weight.clone());
    }
    // candle converts element by element on one thread; convert slices in
    // parallel with the CPU's half-precision instructions.
    let (storage, layout) = weight.storage_and_layout();
    let widened = match (&*storage, layout.contiguous_offsets(), dtype) {
        (Storage::Cpu(CpuStorage::F16(values)), Some((start, end)), DType::F32) => Some(widen_vec(&values[start..end])),
        (Storage::Cpu(CpuStorage::BF16(values)), Some((start, end)), DType::F32) => {
            Some(widen_vec(&values[start..end]))
        }
        _ => None,
    };
    drop(storage);
    match widened {
        Some(values) => Tensor::from_vec(values, weight.shape(), weight.device()),
        None => weight.to_dtype(dtype),
    }
}

/// Whether a GEMM layer can take this weight as it is stored (f32, or half
/// widened by the layer itself) for an f32 input on the CPU.
pub fn widens_in_layer(weight: &Tensor, x: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(weight.dtype(), DType::F16 | DType::BF16) && weight.device().is_cpu()
}

fn widen_vec<T: Sync>(source: &[T]) -> Vec<f32>
where
    [T]: HalfFloatSliceExt,
{
    let mut out = vec![0f32; source.len()];
    widen_into(source, &mut out);
    out
}

fn widen_into<T: Sync>(source: &[T], out: &mut [f32])
where
    [T]: HalfFloatSliceExt,
{
    const CHUNK: usize = 1 << 16;
    out.par_chunks_mut(CHUNK).zip(source.par_chunks(CHUNK)).for_each(|(o, s)| s.convert_to_f32_slice(o));
}

thread_local! {
    static WIDENED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the f32 values of a half-precision weight storage, widened
/// into this thread's reusable buffer (a fresh one if the buffer is in use).
pub fn with_widened<R>(storage: &CpuStorage, layout: &Layout, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let len = layout.shape().elem_count();
    // Grown only, never cleared: every value in use is written by the widening.
    let fill = |out: &mut Vec<f32>| -> Result<()> {
        if out.len() < len {
            out.resize(len, 0.0);
        }
        let out = &mut out[..len];
        match storage {
            CpuStorage::F16(v) => widen_into(contiguous(v, layout)?, out),
            CpuStorage::BF16(v) => widen_into(contiguous(v, layout)?, out),
            _ => candle_core::bail!("with_widened: the weight is not half precision"),
        }
        Ok(())
    };
    WIDENED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            fill(&mut buffer)?;
            Ok(f(&buffer[..len]))
        }
        Err(_) => {
            let mut fresh = Vec::new();
            fill(&mut fresh)?;
            Ok(f(&fresh))
        }
    })
}

/// Frees this thread's widening buffer (after the last layer of a network
/// that will not run again, such as a one-shot generation's U-Net).
pub fn release_widened() {
    WIDENED.with(|cell| {
        if let Ok(mut buffer) = cell.try_borrow_mut() {
            *buffer = Vec::new();
        }
    });
}
