//! Mini-batches as tensors.

use candle_core::{Device, Tensor};

use crate::io::datasets::ImageSet;

/// The images at `idx` as [n, channels, side, side].
pub fn batch_tensor(set: &ImageSet, idx: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(idx.len() * set.image_len());
    for &i in idx {
        data.extend_from_slice(set.image(i));
    }
    Tensor::from_vec(data, (idx.len(), set.channels, set.side, set.side), device)
}
