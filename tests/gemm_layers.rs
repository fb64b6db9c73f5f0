//! The GEMM-based convolutions and linear layer against candle's own kernels in float64 (an
//! independent implementation), in float32 against that reference, and their
//! gradients against central finite differences.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use candle_core::Module;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Conv2dConfig, ConvTranspose2dConfig};
use latent_studio::nn::conv::{Activation, conv_transpose2d_gemm, conv2d_gemm};
use latent_studio::nn::linear::{Linear, linear};
use latent_studio::train::rng::SeededRng;

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

/// candle's bias add and activation after its own convolution: the reference for the fused epilogue.
fn bias_activation(y: Tensor, b: &Tensor, activation: Activation) -> Tensor {
    let y = y.broadcast_add(&b.reshape((1, (), 1, 1)).unwrap()).unwrap();
    match activation {
        Activation::Identity => y,
        Activation::Relu => y.relu().unwrap(),
        Activation::LeakyRelu(slope) => y.maximum(&(&y * slope).unwrap()).unwrap(),
    }
}

/// The activations in turn, for case `i`.
fn nth_activation(i: usize) -> Activation {
    [Activation::Relu, Activation::Identity, Activation::LeakyRelu(0.2)][i % 3]
}

#[test]
fn conv2d_matches_candle_in_f64_and_f32() {
    for (i, c) in CASES.iter().enumerate() {
        for (batch, activation) in [(1, Activation::Identity), (64, nth_activation(i))] {
            let x = random(&[batch, c.cin, c.side, c.side], 10 + i as u64, DType::F64);
            let w = random(&[c.cout, c.cin, c.k, c.k], 20 + i as u64, DType::F64);
            let b = random(&[c.cout], 25 + i as u64, DType::F64);
            let reference = bias_activation(x.conv2d(&w, c.padding, c.stride, c.dilation, 1).unwrap(), &b, activation);
            let ours = conv2d_gemm(&x, &w, Some(&b), &cfg2(c), activation).unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{c:?}");
            assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0), "f64 {c:?} batch {batch}");
            let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
            let ours32 = conv2d_gemm(&f32(&x), &f32(&w), Some(&f32(&b)), &cfg2(c), activation).unwrap();
            // Sums of up to 150 products in f32: relative error ~1e-7 each, bound 2e-6 of the largest output.
            assert!(max_diff(&ours32, &reference) < 2e-6 * max_abs(&reference).max(1.0), "f32 {c:?} batch {batch}");
        }
    }
}

#[test]
fn one_large_image_is_convolved_in_bands_that_match_candle() {
    // 16·9 patch rows × 110² positions (and 64·9 × 55²) exceed the banding
    // threshold (2²⁰ elements) and are not multiples of the band width.
    for (cin, stride, padding, activation) in [(16, 1, 1, Activation::Relu), (64, 2, 0, Activation::Identity)] {
        let c = Case { cin, cout: 8, k: 3, stride, padding, dilation: 1, output_padding: 0, side: 110 };
        let x = random(&[1, c.cin, c.side, c.side], 31, DType::F64);
        let w = random(&[c.cout, c.cin, c.k, c.k], 32, DType::F64);
        let b = random(&[c.cout], 33, DType::F64);
        let reference = bias_activation(x.conv2d(&w, c.padding, c.stride, c.dilation, 1).unwrap(), &b, activation);
        let ours = conv2d_gemm(&x, &w, Some(&b), &cfg2(&c), activation).unwrap();
        assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0), "stride {stride}");
    }
}

#[test]
fn a_batch_of_large_images_is_convolved_band_by_band_per_task() {
    // Four images (at least one per thread) whose patch matrices, 64·9 rows
    // × 60² positions, exceed the banding threshold: each task walks its
    // images in bands of output positions, the last one short.
    let c = Case { cin: 64, cout: 8, k: 3, stride: 1, padding: 1, dilation: 1, output_padding: 0, side: 60 };
    let x = random(&[4, c.cin, c.side, c.side], 41, DType::F64);
    let w = random(&[c.cout, c.cin, c.k, c.k], 42, DType::F64);
    let b = random(&[c.cout], 43, DType::F64);
    let reference =
        bias_activation(x.conv2d(&w, c.padding, c.stride, c.dilation, 1).unwrap(), &b, Activation::LeakyRelu(0.1));
    let ours = conv2d_gemm(&x, &w, Some(&b), &cfg2(&c), Activation::LeakyRelu(0.1)).unwrap();
    assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0));
}

#[test]
fn half_precision_weights_are_widened_inside_the_layer() {
    // Layers loaded from an f16 or bf16 checkpoint keep their weights half
    // and widen them into a reused buffer: the result must be exactly that
    // of the same weights widened beforehand.
    let cfg = Conv2dConfig { padding: 1, stride: 1, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    for dtype in [DType::F16, DType::BF16] {
        let weights = candle_nn::VarMap::new();
        let half_vb = candle_nn::VarBuilder::from_varmap(&weights, dtype, &Device::Cpu);
        let conv = latent_studio::nn::conv::conv2d_no_bias(4, 6, 3, cfg, half_vb.pp("conv")).unwrap();
        let fc = linear(6 * 5 * 5, 3, half_vb.pp("fc")).unwrap();
        let x = random(&[2, 4, 5, 5], 7, DType::F32);
        let h = conv.forward(&x).unwrap();
        let y = fc.forward(&h.flatten_from(1).unwrap()).unwrap();
        assert_eq!((h.dtype(), y.dtype()), (DType::F32, DType::F32));
        let wide = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let expected_h = conv2d_gemm(&x, &wide(conv.weight()), None, &cfg, Activation::Identity).unwrap();
        assert_eq!(max_diff(&h, &expected_h), 0.0, "{dtype:?} conv");
        let flat = h.flatten_from(1).unwrap();
        let expected_y = flat.matmul(&wide(fc.weight()).t().unwrap()).unwrap().broadcast_add(&wide(fc.bias())).unwrap();
        assert!(max_diff(&y, &expected_y) < 1e-5 * max_abs(&expected_y).max(1.0), "{dtype:?} linear");
    }
}

#[test]
fn conv_transpose2d_matches_candle_in_f64_and_f32() {
    for (i, c) in CASES.iter().enumerate() {
        for (batch, activation) in [(1, nth_activation(i + 1)), (64, Activation::Identity)] {
            let x = random(&[batch, c.cin, c.side, c.side], 30 + i as u64, DType::F64);
            let w = random(&[c.cin, c.cout, c.k, c.k], 40 + i as u64, DType::F64);
            let b = random(&[c.cout], 45 + i as u64, DType::F64);
            let builtin = x.conv_transpose2d(&w, c.padding, c.output_padding, c.stride, c.dilation).unwrap();
            let reference = bias_activation(builtin, &b, activation);
            let ours = conv_transpose2d_gemm(&x, &w, Some(&b), &cfgt(c), activation).unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{c:?}");
            assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference).max(1.0), "f64 {c:?} batch {batch}");
            let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
            let ours32 = conv_transpose2d_gemm(&f32(&x), &f32(&w), Some(&f32(&b)), &cfgt(c), activation).unwrap();
            assert!(max_diff(&ours32, &reference) < 2e-6 * max_abs(&reference).max(1.0), "f32 {c:?} batch {batch}");
        }
    }
}

/// A layer under test: output from (x, weight, bias).
type Layer<'a> = dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor + 'a;

/// Checks d(Σ out·r)/dθ from backward against central differences at a few
/// entries of each of x, w and b (all float64).
fn check_gradients(what: &str, shapes: [&[usize]; 3], forward: &Layer) {
    let vars: Vec<Var> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| Var::from_tensor(&random(s, 50 + i as u64, DType::F64)).unwrap())
        .collect();
    let out = forward(vars[0].as_tensor(), vars[1].as_tensor(), vars[2].as_tensor());
    let r = random(out.dims(), 70, DType::F64);
    let loss =
        |t: &[Tensor]| (forward(&t[0], &t[1], &t[2]) * &r).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let grads = (out * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let eps = 1e-6;
    for (which, var) in vars.iter().enumerate() {
        let g: Vec<f64> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let base: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let mut rng = SeededRng::new(80);
        for _ in 0..8 {
            let i = rng.below(base.len());
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let mut inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
                inputs[which] = Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap();
                loss(&inputs)
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            // Central differences in f64 are good to ~1e-8 here.
            assert!(
                (g[i] - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                "{what} {}[{i}]: {} vs {numeric}",
                ["x", "w", "b"][which],
                g[i]
            );
        }
    }
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for (i, c) in CASES.iter().enumerate() {
        let activation = nth_activation(i);
        let shapes: [&[usize]; 3] = [&[2, c.cin, c.side, c.side], &[c.cout, c.cin, c.k, c.k], &[c.cout]];
        check_gradients(&format!("conv2d {c:?} {activation:?}"), shapes, &|x, w, b| {
            conv2d_gemm(x, w, Some(b), &cfg2(c), activation).unwrap()
        });
    }
}

#[test]
fn conv_transpose2d_gradients_match_finite_differences() {
    for (i, c) in CASES.iter().enumerate() {
        let activation = nth_activation(i + 2);
        let shapes: [&[usize]; 3] = [&[2, c.cin, c.side, c.side], &[c.cin, c.cout, c.k, c.k], &[c.cout]];
        check_gradients(&format!("conv_transpose2d {c:?} {activation:?}"), shapes, &|x, w, b| {
            conv_transpose2d_gemm(x, w, Some(b), &cfgt(c), activation).unwrap()
        });
    }
}

#[test]
fn linear_matches_candle_and_finite_differences() {
    for (rows, inputs, outputs, relu) in [(1, 7, 5, false), (64, 33, 17, true), (3, 1, 4, true)] {
        let x = random(&[rows, inputs], 90, DType::F64);
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let layer = linear(inputs, outputs, vb).unwrap();
        let reference = candle_nn::Linear::new(layer.weight().clone(), Some(layer.bias().clone()));
        let expected = reference.forward(&x).unwrap();
        let expected = if relu { expected.relu().unwrap() } else { expected };
        let ours = layer.forward_with(&x, relu).unwrap();
        assert!(max_diff(&ours, &expected) < 1e-12 * max_abs(&expected).max(1.0), "{rows}×{inputs}→{outputs}");
        let shapes: [&[usize]; 3] = [&[rows, inputs], &[outputs, inputs], &[outputs]];
        check_gradients(&format!("linear {rows}×{inputs}→{outputs} relu={relu}"), shapes, &|x, w, b| {
            let l = Linear::from_parts(w.clone(), b.clone());
            l.forward_with(x, relu).unwrap()
        });
    }
}

#[test]
fn bad_geometry_is_an_error_not_a_panic() {
    let x = random(&[1, 2, 3, 3], 1, DType::F32);
    let w = random(&[4, 2, 5, 5], 2, DType::F32);
    let cfg = Conv2dConfig { padding: 0, stride: 1, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    assert!(conv2d_gemm(&x, &w, None, &cfg, Activation::Identity).is_err(), "a 5×5 kernel does not fit a 3×3 image");
    let wrong_channels = random(&[4, 3, 1, 1], 3, DType::F32);
    assert!(conv2d_gemm(&x, &wrong_channels, None, &cfg, Activation::Identity).is_err());
}

#[test]
fn gemm_blocks_with_a_remainder_match_candle_with_gradients() {
    // 144-row patch matrices of 324 columns: two images per GEMM block, so a
    // batch of 7 leaves a block of one image whatever the thread count.
    let c = Case { cin: 16, cout: 8, k: 3, stride: 1, padding: 1, dilation: 1, output_padding: 0, side: 18 };
    for transposed in [false, true] {
        let (cin, cout) = if transposed { (c.cout, c.cin) } else { (c.cin, c.cout) };
        let x = Var::from_tensor(&random(&[7, cin, c.side, c.side], 1, DType::F64)).unwrap();
        let wshape = if transposed { [cin, cout, c.k, c.k] } else { [cout, cin, c.k, c.k] };
        let w = Var::from_tensor(&random(&wshape, 2, DType::F64)).unwrap();
        let b = Var::from_tensor(&random(&[cout], 3, DType::F64)).unwrap();
        let (xt, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
        let ours = if transposed {
            conv_transpose2d_gemm(xt, wt, Some(bt), &cfgt(&c), Activation::Relu).unwrap()
        } else {
            conv2d_gemm(xt, wt, Some(bt), &cfg2(&c), Activation::LeakyRelu(0.2)).unwrap()
        };
        let builtin = if transposed {
            xt.conv_transpose2d(wt, c.padding, c.output_padding, c.stride, c.dilation).unwrap()
        } else {
            xt.conv2d(wt, c.padding, c.stride, c.dilation, 1).unwrap()
        };
        let activation = if transposed { Activation::Relu } else { Activation::LeakyRelu(0.2) };
        let reference = bias_activation(builtin, bt, activation);
        assert!(max_diff(&ours, &reference) < 1e-12 * max_abs(&reference), "transposed={transposed} forward");
        let r = random(ours.dims(), 4, DType::F64);
        let g_ours = (ours * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (reference * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, t) in [("x", xt), ("w", wt), ("b", bt)] {
            let (a, e) = (g_ours.get(t).unwrap(), g_ref.get(t).unwrap());
            assert!(max_diff(a, e) < 1e-12 * max_abs(e), "transposed={transposed} d{name}");
        }
    }
}

#[test]
fn other_dtypes_fall_back_to_candle_kernels() {
    // f16 has no GEMM op here: the layers must hand it to candle's own kernels.
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F16, &Device::Cpu);
    let cfg = Conv2dConfig { padding: 1, stride: 2, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    let conv = latent_studio::nn::conv::conv2d(2, 3, 3, cfg, vb.pp("conv")).unwrap();
    let fc = linear(3 * 4 * 4, 5, vb.pp("fc")).unwrap();
    let x = random(&[2, 2, 8, 8], 5, DType::F16);
    let h = conv.forward_relu(&x).unwrap();
    let expected = bias_activation(
        x.conv2d(conv.weight(), 1, 2, 1, 1).unwrap(),
        &varmap.data().lock().unwrap()["conv.bias"].as_tensor().clone(),
        Activation::Relu,
    );
    assert_eq!(h.dtype(), DType::F16);
    assert!(max_diff(&h, &expected) == 0.0, "the fallback is candle's own conv2d");
    let y = fc.forward(&h.flatten_from(1).unwrap()).unwrap();
    assert_eq!((y.dims(), y.dtype()), (&[2, 5][..], DType::F16));
}
