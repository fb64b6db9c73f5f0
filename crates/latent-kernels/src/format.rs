//! GGML block formats that our own kernels read: the weight formats of the
//! llama-family files we run natively, and the 8-bit formats that activations
//! are quantized to before a dot product (as llama.cpp does). How each weight
//! block's bits become numbers is `blocks`.
//!
//! Layouts (little-endian; 32 elements per block, 256 per K-quant super-block):
//! - Q4_0: `d: f16, qs: [u8; 16]`; element j is `d * (nibble - 8)`, low nibbles
//!   hold j = 0..16 and high nibbles j = 16..32.
//! - Q4_1: `d: f16, m: f16, qs: [u8; 16]`; element j is `d * nibble + m`.
//! - Q5_0: `d: f16, qh: [u8; 4], qs: [u8; 16]`; Q4_0's nibbles with a fifth
//!   bit from `qh` (bit j for element j), centred on 16.
//! - Q5_1: `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`; the same, `d * q + m`.
//! - Q8_0: `d: f16, qs: [i8; 32]`; element j is `d * qs[j]`.
//! - Q4_K: `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`; eight
//!   sub-blocks of 32 with 6-bit scales and mins, `d * sc * q - dmin * m`.
//! - Q5_K: Q4_K with `qh: [u8; 32]` before `qs` (the fifth bits).
//! - Q6_K: `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`; sixteen
//!   sub-blocks of 16, `d * sc * (q - 32)`.
//! - Q8_1: `d: f16, s: f16, qs: [i8; 32]` with `s = d * Σ qs`, so a Q4_1 or
//!   Q5_1 row's offset `m` costs one multiply per block.
//!
//! Our own activation rows keep Q8_0's and Q8_1's `d` and `s` as the f32
//! values of those f16s (the same numbers, so the same results): a kernel
//! then loads them as they are instead of widening an f16 for every token
//! and block. Our Q8_0 rows also keep `Σ q` as an i32 where Q8_1 has `s`:
//! both have 8 header bytes, and a Q5_0 kernel can multiply unsigned
//! quants (q + 16) and subtract 16 · Σ q exactly.
//! - Q8_K: `d: f32, qs: [i8; 256], bsums: [i16; 16]` (sums of each 16), so a
//!   K-quant row's mins cost one multiply per sub-block.

use half::f16;

/// Elements per block of the 32-element formats.
pub const BLOCK: usize = 32;

/// Elements per super-block of the K-quant formats (ggml's `QK_K`).
pub const SUPER_BLOCK: usize = 256;

/// Bytes of a Q8_K block.
pub const Q8K_BYTES: usize = 4 + SUPER_BLOCK + 2 * SUPER_BLOCK / 16;

/// Bytes of one of our Q8_0 activation blocks: `d` as f32, `Σ q` as i32, then the quants.
pub const Q8_0_BYTES: usize = Q8_QUANTS_AT + BLOCK;

/// Where the quants start in our Q8_0 and Q8_1 activation blocks.
pub const Q8_QUANTS_AT: usize = 8;

/// Bytes of one of our Q8_1 activation blocks: `d` and `s` as f32, then the quants.
pub const Q8_1_BYTES: usize = 8 + BLOCK;

/// How a weight matrix is stored in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// Plain floats (F16 and BF16 files are widened to this on load).
    F32,
    /// 4.5 bits per weight, symmetric.
    Q4_0,
    /// 5 bits per weight, with a per-block offset.
    Q4_1,
    /// 5.5 bits per weight, symmetric.
    Q5_0,
    /// 6 bits per weight, with a per-block offset.
    Q5_1,
    /// 8.5 bits per weight.
    Q8_0,
    /// 4.5 bits per weight in super-blocks of 256 (the bulk of Q4_K_M files).
    Q4K,
    /// 5.5 bits per weight in super-blocks of 256 (the bulk of Q5_K_M files).
    Q5K,
    /// 6.56 bits per weight in super-blocks of 256.
    Q6K,
}

/// How activations are stored for the dot products with one weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFormat {
    /// Plain floats, for F32 weights.
    F32,
    /// For Q4_0, Q5_0 and Q8_0 weights.
    Q8_0,
    /// For Q4_1 and Q5_1 weights (carries the block sums).
    Q8_1,
    /// For the K-quants (carries sums of every 16).
    Q8K,
}

impl WeightFormat {
    /// Bytes of one block (F32: of one element).
    pub fn block_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
        }
    }

    /// Elements per block (1 for F32).
    pub fn block_len(self) -> usize {
        match self {
            Self::F32 => 1,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 => BLOCK,
            Self::Q4K | Self::Q5K | Self::Q6K => SUPER_BLOCK,
        }
    }

    /// The activation format its dot product reads.
    pub fn act_format(self) -> ActFormat {
        match self {
            Self::F32 => ActFormat::F32,
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => ActFormat::Q8_0,
            Self::Q4_1 | Self::Q5_1 => ActFormat::Q8_1,
            Self::Q4K | Self::Q5K | Self::Q6K => ActFormat::Q8K,
        }
    }

    /// Bytes of a row of `cols` elements; `None` if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        cols.is_multiple_of(self.block_len()).then(|| cols / self.block_len() * self.block_bytes())
    }
}

impl ActFormat {
    /// Bytes of a row of `cols` elements (`cols` a multiple of [`BLOCK`] for
    /// the 8-bit formats, of [`SUPER_BLOCK`] for Q8_K).
    pub fn row_bytes(self, cols: usize) -> usize {
        match self {
            Self::F32 => cols * 4,
            Self::Q8_0 => cols / BLOCK * Q8_0_BYTES,
            Self::Q8_1 => cols / BLOCK * Q8_1_BYTES,
            Self::Q8K => cols / SUPER_BLOCK * Q8K_BYTES,
        }
    }
}

/// Reads the f32 at `bytes[at..at + 4]`.
#[inline]
pub fn f32_at(bytes: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
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
        ActFormat::Q8_0 => quantize_q8(x, out, Q8_0_BYTES, false),
        ActFormat::Q8_1 => quantize_q8(x, out, Q8_1_BYTES, true),
        ActFormat::Q8K => {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
                // SAFETY: the CPU has the features (checked above).
                unsafe { quantize_q8k_avx2(x, out) };
                return;
            }
            quantize_q8k(x, out)
        }
    }
}

/// [`quantize_q8k`] in AVX2, the same bytes (see [`quantize_q8_avx2`] for why).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8k_avx2(x: &[f32], out: &mut [u8]) {
    use std::arch::x86_64::*;
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let lanes = SUPER_BLOCK / 8;
    for (xs, ob) in x.chunks_exact(SUPER_BLOCK).zip(out.chunks_exact_mut(Q8K_BYTES)) {
        // SAFETY: xs holds 256 floats; vector i reads 8 of them.
        let v: [__m256; SUPER_BLOCK / 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * i)) });
        let m = v.iter().fold(_mm256_setzero_ps(), |m, &v| _mm256_max_ps(_mm256_andnot_ps(sign, v), m));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        if amax == 0.0 || amax.is_nan() {
            quantize_q8k(xs, ob);
            continue;
        }
        // The first element of largest magnitude, with its sign, as the scalar loop picks it.
        let wanted = _mm256_set1_ps(amax);
        let first = (0..lanes)
            .find_map(|i| {
                let hits = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, v[i]), wanted));
                (hits != 0).then(|| 8 * i + hits.trailing_zeros() as usize)
            })
            .unwrap_or(0);
        let iscale = -127.0 / xs[first];
        let scale = _mm256_set1_ps(iscale);
        let top = _mm256_set1_epi32(127);
        let (head, rest) = ob.split_at_mut(4);
        let (qs, sums) = rest.split_at_mut(SUPER_BLOCK);
        for (c, (q32, sum2)) in qs.chunks_exact_mut(32).zip(sums.chunks_exact_mut(4)).enumerate() {
            // Half to even (the default rounding mode), at most 127, as the scalar loop does.
            let q: [__m256i; 4] =
                std::array::from_fn(|k| _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[4 * c + k], scale)), top));
            for (h, pair) in [(q[0], q[1]), (q[2], q[3])].into_iter().enumerate() {
                let t = _mm256_add_epi32(pair.0, pair.1);
                let t = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
                let t = _mm_add_epi32(t, _mm_shuffle_epi32::<0b01_00_11_10>(t));
                let total = _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32::<0b10_11_00_01>(t)));
                sum2[2 * h..2 * h + 2].copy_from_slice(&(total as i16).to_le_bytes());
            }
            let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            // SAFETY: q32 is 32 bytes.
            unsafe { _mm256_storeu_si256(q32.as_mut_ptr().cast(), _mm256_permutevar8x32_epi32(bytes, order)) };
        }
        head.copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// ggml's `quantize_row_q8_K_ref`: scale so that the value of largest
/// magnitude becomes ∓127 (its sign flipped, as ggml does), round half to
/// even, and keep the sum of every 16 quants.
#[inline(always)]
fn quantize_q8k(x: &[f32], out: &mut [u8]) {
    for (xs, ob) in x.chunks_exact(SUPER_BLOCK).zip(out.chunks_exact_mut(Q8K_BYTES)) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in xs {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        if amax == 0.0 {
            ob.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        let (head, rest) = ob.split_at_mut(4);
        let (qs, sums) = rest.split_at_mut(SUPER_BLOCK);
        for (q, v) in qs.iter_mut().zip(xs) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i8 as u8;
        }
        for (group, sum) in qs.chunks_exact(16).zip(sums.chunks_exact_mut(2)) {
            let total: i16 = group.iter().map(|&q| i16::from(q as i8)).sum();
            sum.copy_from_slice(&total.to_le_bytes());
        }
        head.copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// ggml's `quantize_row_q8_0`/`q8_1` as its x86 code does them: scale by the
/// block's largest magnitude to ±127, round half to even; Q8_1 also stores
/// `d · Σ q` in f16, our Q8_0 `Σ q` itself.
fn quantize_q8(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has the features (checked above).
        unsafe { quantize_q8_avx2(x, out, block_bytes, with_sum) };
        return;
    }
    quantize_q8_portable(x, out, block_bytes, with_sum);
}

/// [`quantize_q8_portable`] in AVX2, the same numbers: the compiled loop
/// stayed scalar (a float max does not reassociate, a saturating cast per
/// element), and a prompt quantizes every token's row for every matrix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_q8_avx2(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    use std::arch::x86_64::*;
    let header = block_bytes - BLOCK;
    let sign = _mm256_set1_ps(-0.0);
    // packs interleave 128-bit lanes; this puts the 32 quants back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let as_stored = |v: f32| _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v))));
    for (xs, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(block_bytes)) {
        // SAFETY: xs holds 32 floats; vector i reads 8 of them.
        let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * i)) });
        // max(|v|, m) keeps m where v is NaN, as f32::max does.
        let m = v.iter().fold(_mm256_setzero_ps(), |m, &v| _mm256_max_ps(_mm256_andnot_ps(sign, v), m));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        ob[..4].copy_from_slice(&as_stored(d).to_le_bytes());
        let scale = _mm256_set1_ps(id);
        // cvtps rounds half to even (the default rounding mode); |v · id| ≤ 127.
        let q = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, scale)));
        let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let total = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256::<1>(total));
        let total = _mm_add_epi32(total, _mm_shuffle_epi32::<0b01_00_11_10>(total));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(total, _mm_shuffle_epi32::<0b10_11_00_01>(total)));
        let bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        // SAFETY: ob[header..] is 32 bytes.
        unsafe { _mm256_storeu_si256(ob[header..].as_mut_ptr().cast(), _mm256_permutevar8x32_epi32(bytes, order)) };
        if with_sum {
            ob[4..8].copy_from_slice(&as_stored(sum as f32 * d).to_le_bytes());
        } else {
            ob[4..8].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

#[inline(always)]
fn quantize_q8_portable(x: &[f32], out: &mut [u8], block_bytes: usize, with_sum: bool) {
    let header = block_bytes - BLOCK;
    for (xs, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(block_bytes)) {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        // 127 / amax, not 1 / d: the two differ in the last bit now and then,
        // and that moves a quant by one where a value lies near a half step.
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        // The f16 ggml stores, kept as the f32 it stands for.
        let as_stored = |v: f32| f16::from_f32(v).to_f32().to_le_bytes();
        ob[..4].copy_from_slice(&as_stored(d));
        let mut sum = 0i32;
        for (q, v) in ob[header..].iter_mut().zip(xs) {
            let r = (v * id).round_ties_even() as i8;
            sum += i32::from(r);
            *q = r as u8;
        }
        if with_sum {
            ob[4..8].copy_from_slice(&as_stored(sum as f32 * d));
        } else {
            ob[4..8].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_quantization_gives_the_portable_bytes() {
        // Ties on purpose: multiples of 1/254 of the largest value sit on half steps.
        let x: Vec<f32> =
            (0..32 * 40)
                .map(|i| {
                    if i % 3 == 0 {
                        (i % 255) as f32 / 254.0 * 2.5
                    } else {
                        ((i * 7919 % 1000) as f32 - 500.0) * 0.0123
                    }
                })
                .chain(std::iter::repeat_n(0.0, 32))
                .collect();
        for (format, bytes, with_sum) in [(ActFormat::Q8_0, Q8_0_BYTES, false), (ActFormat::Q8_1, Q8_1_BYTES, true)] {
            let mut fast = vec![0u8; format.row_bytes(x.len())];
            quantize_row(format, &x, &mut fast);
            let mut portable = vec![0u8; fast.len()];
            quantize_q8_portable(&x, &mut portable, bytes, with_sum);
            assert_eq!(fast, portable, "{format:?}");
        }
        // Q8_K: the largest magnitude twice with opposite signs (the first one's sign wins).
        let mut x = x[..3 * SUPER_BLOCK].to_vec();
        x[40] = -9.0;
        x[41] = 9.0;
        let mut fast = vec![0u8; ActFormat::Q8K.row_bytes(x.len())];
        quantize_row(ActFormat::Q8K, &x, &mut fast);
        let mut portable = vec![0u8; fast.len()];
        quantize_q8k(&x, &mut portable);
        assert_eq!(fast, portable, "Q8_K");
    }

    #[test]
    fn q8_rounds_to_within_half_a_step_and_keeps_the_sum() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
        for format in [ActFormat::Q8_0, ActFormat::Q8_1] {
            let mut q = vec![0u8; format.row_bytes(x.len())];
            quantize_row(format, &x, &mut q);
            let block_bytes = format.row_bytes(BLOCK);
            for (xs, b) in x.chunks(BLOCK).zip(q.chunks(block_bytes)) {
                let d = f32_at(b, 0);
                assert_eq!(d, f16::from_f32(d).to_f32(), "d is an f16's value");
                let qs = &b[block_bytes - BLOCK..];
                for (v, &q) in xs.iter().zip(qs) {
                    assert!((v - d * f32::from(q as i8)).abs() <= d * 0.5 + 1e-3 * d, "{v} vs {}", q as i8);
                }
                let sum: i32 = qs.iter().map(|&q| i32::from(q as i8)).sum();
                if format == ActFormat::Q8_1 {
                    assert!((f32_at(b, 4) - d * sum as f32).abs() <= 1e-3 * (d * sum as f32).abs() + 1e-6);
                } else {
                    assert_eq!(i32::from_le_bytes([b[4], b[5], b[6], b[7]]), sum);
                }
            }
        }
    }
}
