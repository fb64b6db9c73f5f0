//! GGML block formats that our own kernels read: the weight formats of the
//! llama-family files we run natively, and the 8-bit formats that activations
//! are quantized to before a dot product (as llama.cpp does).
//!
//! Layouts (little-endian, 32 elements per block):
//! - Q4_0: `d: f16, qs: [u8; 16]`; element j is `d * (nibble - 8)`, low nibbles
//!   hold j = 0..16 and high nibbles j = 16..32.
//! - Q4_1: `d: f16, m: f16, qs: [u8; 16]`; element j is `d * nibble + m`.
//! - Q8_0: `d: f16, qs: [i8; 32]`; element j is `d * qs[j]`.
//! - Q8_1: `d: f16, s: f16, qs: [i8; 32]` with `s = d * Σ qs`, so a Q4_1 row's
//!   offset `m` costs one multiply per block.

use half::f16;

/// Elements per quantized block in every format here.
pub const BLOCK: usize = 32;

/// How a weight matrix is stored in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Plain floats (F16 and BF16 files are widened to this on load).
    F32,
    /// 4.5 bits per weight, symmetric.
    Q4_0,
    /// 5 bits per weight, with a per-block offset.
    Q4_1,
    /// 8.5 bits per weight.
    Q8_0,
}

/// How activations are stored for the dot products with one weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    /// Plain floats, for F32 weights.
    F32,
    /// For Q4_0 and Q8_0 weights.
    Q8_0,
    /// For Q4_1 weights (carries the block sums).
    Q8_1,
}

impl WeightFormat {
    /// Bytes of one block (F32: of one element).
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
        }
    }

    /// Elements per block (1 for F32).
    pub fn block_len(self) -> usize {
        if self == Self::F32 { 1 } else { BLOCK }
    }

    /// The activation format its dot product reads.
    pub fn act_format(self) -> ActFormat {
        match self {
            Self::F32 => ActFormat::F32,
            Self::Q4_0 | Self::Q8_0 => ActFormat::Q8_0,
            Self::Q4_1 => ActFormat::Q8_1,
        }
    }

    /// Bytes of a row of `cols` elements; `None` if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        cols.is_multiple_of(self.block_len()).then(|| cols / self.block_len() * self.block_bytes())
    }
}

impl ActFormat {
    /// Bytes of a row of `cols` elements (`cols` a multiple of [`BLOCK`] for the 8-bit formats).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            Self::F32 => cols * 4,
            Self::Q8_0 => cols / BLOCK * 34,
            Self::Q8_1 => cols / BLOCK * 36,
        }
    }
}

/// Reads the f16 at `bytes[at..at + 2]`.
#[inline]
pub fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Quantizes `x` (a multiple of [`BLOCK`] long) into `out` in `format`;
/// `out` is `format.row_bytes(x.len())` long. F32 is stored as its bytes.
pub fn quantize_row(format: ActFormat, x: &[f32], out: &mut [u8]) {
    match format {
        ActFormat::F32 => {
            for (o, v) in out.chunks_exact_mut(4).zip(x) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        ActFormat::Q8_0 => quantize_q8(x, out, 34, false),
        ActFormat::Q8_1 => quantize_q8(x, out, 36, true),
    }
}

/// ggml's `quantize_row_q8_0`/`q8_1` as its x86 code does them: scale by the
/// block's largest magnitude to ±127, round half to even; Q8_1 also stores
/// `d · Σ q` in f16.
fn quantize_q8(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has the features (checked above).
        unsafe { quantize_q8_avx2(x, out, block_bytes, with_sum) };
        return;
    }
    quantize_q8_portable(x, out, block_bytes, with_sum);
}

/// The same loop compiled for AVX2, where rounding is one instruction and the
/// loops vectorise (without it every element calls libm's `roundf`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8_avx2(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    quantize_q8_portable(x, out, block_bytes, with_sum);
}

#[inline(always)]
fn quantize_q8_portable(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    let header = block_bytes - BLOCK;
    for (xs, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(block_bytes)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
        let mut sum = 0i32;
        for (q, v) in ob[header..].iter_mut().zip(xs) {
            let r = (v * id).round_ties_even() as i8;
            sum += i32::from(r);
            *q = r as u8;
        }
        if with_sum {
            ob[2..4].copy_from_slice(&f16::from_f32(sum as f32 * d).to_le_bytes());
        }
    }
}

/// Dequantizes one row of `format` weights into `out` (`out.len()` elements).
pub fn dequantize_row(format: WeightFormat, row: &[u8], out: &mut [f32]) {
    match format {
        WeightFormat::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            let offset = format == WeightFormat::Q4_1;
            let qs_at = if offset { 4 } else { 2 };
            for (b, o) in row.chunks_exact(format.block_bytes()).zip(out.chunks_exact_mut(BLOCK)) {
                let d = f16_at(b, 0);
                let (m, zero) = if offset { (f16_at(b, 2), 0.0) } else { (0.0, 8.0) };
                for (j, &q) in b[qs_at..].iter().enumerate() {
                    o[j] = d * (f32::from(q & 15) - zero) + m;
                    o[j + 16] = d * (f32::from(q >> 4) - zero) + m;
                }
            }
        }
        WeightFormat::Q8_0 => {
            for (b, o) in row.chunks_exact(34).zip(out.chunks_exact_mut(BLOCK)) {
                let d = f16_at(b, 0);
                for (o, &q) in o.iter_mut().zip(&b[2..]) {
                    *o = d * f32::from(q as i8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_rounds_to_within_half_a_step_and_keeps_the_sum() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        for format in [ActFormat::Q8_0, ActFormat::Q8_1] {
            let mut q = vec![0u8; format.row_bytes(x.len())];
            quantize_row(format, &x, &mut q);
            let block_bytes = format.row_bytes(BLOCK);
            for (xs, b) in x.chunks(BLOCK).zip(q.chunks(block_bytes)) {
                let d = f16_at(b, 0);
                let qs = &b[block_bytes - BLOCK..];
                for (v, &q) in xs.iter().zip(qs) {
                    assert!((v - d * f32::from(q as i8)).abs() <= d * 0.5 + 1e-3 * d, "{v} vs {}", q as i8);
                }
                if format == ActFormat::Q8_1 {
                    let sum: i32 = qs.iter().map(|&q| i32::from(q as i8)).sum();
                    assert!((f16_at(b, 2) - d * sum as f32).abs() <= 1e-3 * (d * sum as f32).abs() + 1e-6);
                }
            }
        }
    }

    #[test]
    fn q4_layouts_put_low_nibbles_first() {
        // d = 1, m = 0.5; byte j = (high = 15 - j % 16, low = j % 16).
        let mut block = vec![0u8; 20];
        block[..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        for j in 0..16 {
            block[4 + j] = ((15 - j as u8) << 4) | j as u8;
        }
        let mut out = [0f32; 32];
        dequantize_row(WeightFormat::Q4_1, &block, &mut out);
        for j in 0..16 {
            assert_eq!(out[j], j as f32 + 0.5);
            assert_eq!(out[j + 16], (15 - j) as f32 + 0.5);
        }
        let q4_0: Vec<u8> = [&block[..2], &block[4..]].concat();
        dequantize_row(WeightFormat::Q4_0, &q4_0, &mut out);
        assert_eq!((out[0], out[15], out[16]), (-8.0, 7.0, 7.0));
    }
}
