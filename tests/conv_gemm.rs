//! The GEMM-based convolutions against candle's own kernels in float64 (an
//! independent implementation), in float32 against that reference, and their
//! gradients against central finite differences.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig};
use latent_studio::models::conv::{conv_transpose2d_gemm, conv2d_gemm};
use latent_studio::pipelines::rng::SeededRng;

/// One parameter variant: channels in/out, kernel, stride, padding, dilation, output padding, image side.
#[derive(Clone, Copy, Debug)]
struct Case {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    output_padding: usize,
    side: usize,
}

const CASES: [Case; 6] = [
    Case { cin: 3, cout: 5, k: 3, stride: 1, padding: 1, dilation: 1, output_padding: 0, side: 7 },
    Case { cin: 4, cout: 6, k: 4, stride: 2, padding: 1, dilation: 1, output_padding: 0, side: 8 },
    Case { cin: 2, cout: 3, k: 3, stride: 2, padding: 0, dilation: 2, output_padding: 1, side: 9 },
    Case { cin: 5, cout: 2, k: 1, stride: 1, padding: 0, dilation: 1, output_padding: 0, side: 5 },
    Case { cin: 3, cout: 4, k: 5, stride: 3, padding: 2, dilation: 1, output_padding: 2, side: 6 },
    Case { cin: 6, cout: 4, k: 2, stride: 1, padding: 1, dilation: 3, output_padding: 0, side: 6 },
];

fn random(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
    let n = shape.iter().product();
    let data: Vec<f64> = (0..n)
        .map({
            let mut rng = SeededRng::new(seed);
            move |_| rng.normal()
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs(&(a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap())
}

fn cfg2(c: &Case) -> Conv2dConfig {
    Conv2dConfig { padding: c.padding, stride: c.stride, dilation: c.dilation, groups: 1, cudnn_fwd_algo: None }
}

fn cfgt(c: &Case) -> ConvTranspose2dConfig {
    ConvTranspose2dConfig {
        padding: c.padding,
        output_padding: c.output_padding,
        stride: c.stride,
        dilation: c.dilation,
    }
}

#[test]
fn conv2d_matches_candle_in_f64_and_f32() {
    for (i, c) in CASES.iter().enumerate() {
        for batch in [1, 64] {
            let x = random(&[batch, c.cin, c.side, c.side], 10 + i as u64, DType::F64);
            let w = random(&[c.cout, c.cin, c.k, c.k], 20 + i as u64, DType::F64);
            let reference = x.conv2d(&w, c.padding, c.stride, c.dilation, 1).unwrap();
            let ours = conv2d_gemm(&x, &w, &cfg2(c)).unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{c:?}");
            assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0), "f64 {c:?} batch {batch}");
            let ours32 =
                conv2d_gemm(&x.to_dtype(DType::F32).unwrap(), &w.to_dtype(DType::F32).unwrap(), &cfg2(c)).unwrap();
            // Sums of up to 150 products in f32: relative error ~1e-7 each, bound 2e-6 of the largest output.
            assert!(max_diff(&ours32, &reference) < 2e-6 * max_abs(&reference).max(1.0), "f32 {c:?} batch {batch}");
        }
    }
}

#[test]
fn conv_transpose2d_matches_candle_in_f64_and_f32() {
    for (i, c) in CASES.iter().enumerate() {
        for batch in [1, 64] {
            let x = random(&[batch, c.cin, c.side, c.side], 30 + i as u64, DType::F64);
            let w = random(&[c.cin, c.cout, c.k, c.k], 40 + i as u64, DType::F64);
            let reference = x.conv_transpose2d(&w, c.padding, c.output_padding, c.stride, c.dilation).unwrap();
            let ours = conv_transpose2d_gemm(&x, &w, &cfgt(c)).unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{c:?}");
            assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0), "f64 {c:?} batch {batch}");
            let ours32 =
                conv_transpose2d_gemm(&x.to_dtype(DType::F32).unwrap(), &w.to_dtype(DType::F32).unwrap(), &cfgt(c))
                    .unwrap();
            assert!(max_diff(&ours32, &reference) < 2e-6 * max_abs(&reference).max(1.0), "f32 {c:?} batch {batch}");
        }
    }
}

/// Checks d(Σ out·r)/dθ from backward against central differences at a few entries of x and w.
fn check_gradients(c: &Case, transposed: bool) {
    let x = Var::from_tensor(&random(&[2, c.cin, c.side, c.side], 50, DType::F64)).unwrap();
    let wshape = if transposed { [c.cin, c.cout, c.k, c.k] } else { [c.cout, c.cin, c.k, c.k] };
    let w = Var::from_tensor(&random(&wshape, 60, DType::F64)).unwrap();
    let forward = |x: &Tensor, w: &Tensor| {
        if transposed { conv_transpose2d_gemm(x, w, &cfgt(c)) } else { conv2d_gemm(x, w, &cfg2(c)) }.unwrap()
    };
    let out = forward(x.as_tensor(), w.as_tensor());
    let r = random(out.dims(), 70, DType::F64);
    let loss = |x: &Tensor, w: &Tensor| (forward(x, w) * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let eps = 1e-6;
    for (var, other, is_x) in [(&x, &w, true), (&w, &x, false)] {
        let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let mut rng = SeededRng::new(80);
        for _ in 0..8 {
            let i = rng.below(base.len());
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap();
                if is_x { loss(&t, other.as_tensor()) } else { loss(other.as_tensor(), &t) }
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            // Central differences in f64 are good to ~1e-8 here.
            assert!(
                (g[i] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                "{c:?} transposed={transposed} {}[{i}]: {} vs {numeric}",
                if is_x { "x" } else { "w" },
                g[i]
            );
        }
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for c in &CASES {
        check_gradients(c, false);
    }
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    for c in &CASES {
        check_gradients(c, true);
    }
}

#[test]
fn bad_geometry_is_an_error_not_a_panic() {
    let x = random(&[1, 2, 3, 3], 1, DType::F32);
    let w = random(&[4, 2, 5, 5], 2, DType::F32);
    let cfg = Conv2dConfig { padding: 0, stride: 1, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    assert!(conv2d_gemm(&x, &w, &cfg).is_err(), "a 5×5 kernel does not fit a 3×3 image");
    let wrong_channels = random(&[4, 3, 1, 1], 3, DType::F32);
    assert!(conv2d_gemm(&x, &wrong_channels, &cfg).is_err());
}
