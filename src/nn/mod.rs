//! Layers and custom ops with their own backward passes: convolutions and
//! linears on GEMMs (`conv`, `conv_op`, `linear`, `layer_op`, `epilogue`,
//! `im2col`, `im2col_phases`, `matrix`), layer/group norm (`norm_op`), batch norm in
//! training (`batch_norm_op`), attention
//! (`attention_op`) and GEGLU (`geglu_op`). Every family builds on these; on
//! devices other than the CPU each op falls back to candle's own kernels.

pub mod attention_op;
pub mod batch_norm_op;
pub mod conv;
pub mod conv_op;
pub mod epilogue;
pub mod geglu_op;
pub mod im2col;
pub mod im2col_phases;
pub mod layer_op;
pub mod linear;
pub mod matrix;
pub mod memory;
pub mod norm_op;
pub mod widen;

pub use widen::widened;

/// The device models run on: the first GPU when built with `cuda` or `metal`
/// and one is present, else the CPU.
pub fn default_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = candle_core::Device::new_metal(0) {
        return d;
    }
    candle_core::Device::Cpu
}

/// The kind of device, for the status bar: "CPU", "CUDA GPU", "Metal GPU".
pub fn device_kind(device: &candle_core::Device) -> &'static str {
    match device {
        candle_core::Device::Cpu => "CPU",
        candle_core::Device::Cuda(_) => "CUDA GPU",
        candle_core::Device::Metal(_) => "Metal GPU",
    }
}

/// Where models run, in full, as the command line and a tooltip say it:
/// "CPU (2 threads, AVX-512)", "CUDA GPU 0", "Metal GPU".
pub fn device_label(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => {
            let threads = candle_core::utils::get_num_threads();
            format!("CPU ({threads} thread{}{})", if threads == 1 { "" } else { "s" }, cpu_simd())
        }
        candle_core::Device::Cuda(_) => "CUDA GPU 0".to_owned(),
        candle_core::Device::Metal(_) => "Metal GPU".to_owned(),
    }
}

/// The widest SIMD our kernels pick on this CPU, for the device label.
fn cpu_simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return ", AVX-512";
        }
        if std::is_x86_feature_detected!("avx2") {
            return ", AVX2";
        }
    }
    ""
}

#[cfg(test)]
mod widened_tests {
    use candle_core::{DType, Device, Tensor};

    #[test]
    fn widening_matches_candles_conversion_for_both_half_types() {
        let values: Vec<f32> = (0..200_003).map(|i| ((i as f32) * 0.37).sin() * 100.0).collect();
        let base = Tensor::from_vec(values, (200_003,), &Device::Cpu).unwrap();
        for half in [DType::F16, DType::BF16] {
            let stored = base.to_dtype(half).unwrap();
            let ours: Vec<f32> = super::widened(&stored, DType::F32).unwrap().to_vec1().unwrap();
            let candle: Vec<f32> = stored.to_dtype(DType::F32).unwrap().to_vec1().unwrap();
            assert_eq!(ours, candle, "{half:?}");
        }
        // A view into a larger tensor is widened from its own offset.
        let stored = base.to_dtype(DType::F16).unwrap().narrow(0, 5, 10).unwrap();
        let ours: Vec<f32> = super::widened(&stored, DType::F32).unwrap().to_vec1().unwrap();
        assert_eq!(ours, stored.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap());
    }
}
