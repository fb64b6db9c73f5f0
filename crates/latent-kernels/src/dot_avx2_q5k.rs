//! AVX2 kernels for the weight types of K-quant files: Q5_0 and Q5_1 (what
//! llama.cpp's quantizer falls back to for rows that are not a multiple of
//! 256) and Q4_K, Q5_K, Q6_K against Q8_K activations. Quants are widened to
//! bytes, multiplied with `maddubs` (unsigned × signed → i16 pairs) and summed
//! with `madd` against each sub-block's integer scale; the K-quants' mins go
//! through Q8_K's sums of 16. Each kernel takes `N` tokens at once (1 for
//! generation, 4 for a prompt): a weight block is unpacked once for all of
//! them, and each token's arithmetic is the same whatever `N`, so a prompt
//! gives the same numbers fed whole or token by token.

use std::arch::x86_64::*;

use super::blocks::SUBS;
use super::dot_avx2::{byte_sums_onto, hsum, two_floats, unpack_nibbles};
use super::format::{Q8_0_BYTES, Q8_1_BYTES, Q8_QUANTS_AT, Q8K_BYTES, SUPER_BLOCK, f16_at};

/// Byte j is 0xFF where bit j of the 32 bits at `p` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits(p: *const u8) -> __m256i {
    // SAFETY: callers pass a pointer to four readable bytes.
    let bits = unsafe { p.cast::<i32>().read_unaligned() };
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits),
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    // Every byte gets all bits but its own set; it is all ones iff its own bit was.
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(spread, others), _mm256_set1_epi64x(-1))
}

/// The 32 quants of the Q5_0 block at `wb`, plus 16 (unsigned five-bit bytes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn q5_0_plus_16(wb: *const u8) -> __m256i {
    // SAFETY: callers pass a pointer to a whole 22-byte Q5_0 block.
    let (qs, qh) = unsafe { (_mm_loadu_si128(wb.add(6).cast()), wb.add(2)) };
    let high = _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10));
    _mm256_or_si256(unpack_nibbles(qs), high)
}

/// Q5_0 · Q8_0 for `N` tokens. The five bits make q + 16, an unsigned byte
/// that multiplies the activations as they are; Σ (q + 16) · x − 16 · Σ x
/// (the activation block's sum, subtracted in lane 0) is the exact integer
/// Σ q · x.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_0_q8_0<const N: usize, const VNNI: bool>(w: &[u8], x: [&[u8]; N]) -> [f32; N] {
    let n = x.iter().fold(w.len() / 22, |n, x| n.min(x.len() / Q8_0_BYTES));
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..n {
        // SAFETY: block i spans w[22i..22i+22] and x[k][36i..36i+36], inside every slice.
        unsafe {
            let wb = w.as_ptr().add(22 * i);
            let wu = q5_0_plus_16(wb);
            let d_w = _mm256_set1_ps(f16_at(std::slice::from_raw_parts(wb, 2), 0));
            for k in 0..N {
                let xb = x[k].as_ptr().add(Q8_0_BYTES * i);
                let d = _mm256_mul_ps(d_w, _mm256_set1_ps(xb.cast::<f32>().read_unaligned()));
                let sum = xb.add(4).cast::<i32>().read_unaligned();
                let start = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-16 * sum));
                let xq = _mm256_loadu_si256(xb.add(Q8_QUANTS_AT).cast());
                acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(byte_sums_onto::<VNNI>(start, wu, xq)), acc[k]);
            }
        }
    }
    acc.map(|a| hsum(a))
}

/// Q5_1 · Q8_1 for `N` tokens: unsigned five-bit quants, the offset through Q8_1's sum.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_1_q8_1<const N: usize>(w: &[u8], x: [&[u8]; N]) -> [f32; N] {
    let n = x.iter().fold(w.len() / 24, |n, x| n.min(x.len() / Q8_1_BYTES));
    let ones = _mm256_set1_epi16(1);
    let (mut acc, mut offsets) = ([_mm256_setzero_ps(); N], [_mm_setzero_ps(); N]);
    for i in 0..n {
        // SAFETY: block i spans w[24i..24i+24] and x[k][40i..40i+40], inside every slice.
        unsafe {
            let wb = w.as_ptr().add(24 * i);
            let wh = _mm_cvtph_ps(_mm_cvtsi32_si128(wb.cast::<i32>().read_unaligned()));
            let low = unpack_nibbles(_mm_loadu_si128(wb.add(8).cast()));
            let high = _mm256_and_si256(bytes_from_bits(wb.add(4)), _mm256_set1_epi8(0x10));
            let wq = _mm256_or_si256(low, high);
            for k in 0..N {
                let xb = x[k].as_ptr().add(Q8_1_BYTES * i);
                // [d_w, m_w] · [d_x, s_x] → [d_w·d_x, m_w·s_x].
                let scales = _mm_mul_ps(wh, two_floats(xb));
                offsets[k] = _mm_add_ps(offsets[k], scales);
                let xq = _mm256_loadu_si256(xb.add(8).cast());
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones);
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), _mm256_cvtepi32_ps(p), acc[k]);
            }
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + _mm_cvtss_f32(_mm_shuffle_ps(offsets[k], offsets[k], 1)))
}

/// A Q8_K block's scale, quants and sums of 16.
#[inline(always)]
fn q8k_parts(xb: &[u8]) -> (f32, *const u8, [i16; SUBS]) {
    let d = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
    let sums = std::array::from_fn(|s| i16::from_le_bytes([xb[4 + SUPER_BLOCK + 2 * s], xb[5 + SUPER_BLOCK + 2 * s]]));
    (d, xb[4..].as_ptr(), sums)
}

/// The 6-bit scales and mins of a Q4_K/Q5_K super-block (`s` its 12 scale bytes).
#[inline(always)]
fn scales_mins_k4(s: &[u8]) -> ([i16; 8], [i16; 8]) {
    let mut scales = [0i16; 8];
    let mut mins = [0i16; 8];
    for j in 0..8 {
        let (sc, m) = if j < 4 {
            (s[j] & 63, s[j + 4] & 63)
        } else {
            ((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
        };
        (scales[j], mins[j]) = (i16::from(sc), i16::from(m));
    }
    (scales, mins)
}

/// Q4_K or Q5_K (`qh` the fifth bits) · Q8_K for `N` tokens, summed in
/// ggml's order (so greedy text follows llama.cpp's at near-ties): the scale
/// terms in eight float lanes across super-blocks, the min terms per pair of
/// sub-blocks in four lanes (Q4_K) or as one running float (Q5_K).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q45k_q8k<const N: usize>(w: &[u8], x: [&[u8]; N], five_bits: bool) -> [f32; N] {
    let block = if five_bits { 176 } else { 144 };
    let n = x.iter().fold(w.len() / block, |n, x| n.min(x.len() / Q8K_BYTES));
    let (mask, one) = (_mm256_set1_epi8(15), _mm256_set1_epi8(1));
    let (mut acc, mut acc_min, mut sum_min) = ([_mm256_setzero_ps(); N], [_mm_setzero_ps(); N], [0f32; N]);
    for i in 0..n {
        let wb = &w[block * i..block * (i + 1)];
        let (scales, mins) = scales_mins_k4(&wb[4..16]);
        let (d_w, dmin_w) = (f16_at(wb, 0), f16_at(wb, 2));
        // The 256 quants as bytes, chunk c's low nibbles then its high ones.
        let mut quants = [_mm256_setzero_si256(); 8];
        let qs = if five_bits { &wb[48..] } else { &wb[16..] };
        // SAFETY: qs holds 128 bytes and qh 32: every load stays inside.
        unsafe {
            let qh = if five_bits { _mm256_loadu_si256(wb[16..].as_ptr().cast()) } else { _mm256_setzero_si256() };
            for c in 0..4 {
                let q4 = _mm256_loadu_si256(qs.as_ptr().add(32 * c).cast());
                let (mut lo, mut hi) = (_mm256_and_si256(q4, mask), _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask));
                if five_bits {
                    let bit = |k: i32| {
                        let shifted = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(k));
                        _mm256_slli_epi16(_mm256_and_si256(shifted, one), 4)
                    };
                    lo = _mm256_or_si256(lo, bit(2 * c as i32));
                    hi = _mm256_or_si256(hi, bit(2 * c as i32 + 1));
                }
                (quants[2 * c], quants[2 * c + 1]) = (lo, hi);
            }
        }
        for k in 0..N {
            let (d_x, yq, sums) = q8k_parts(&x[k][Q8K_BYTES * i..Q8K_BYTES * (i + 1)]);
            let (d, dmin) = (d_x * d_w, -d_x * dmin_w);
            // Per pair of sub-blocks of 32: Σ min · (the activations' sum over the sub-block).
            let pair = |p: usize| {
                let sum = |j: usize| i32::from(sums[2 * j]) + i32::from(sums[2 * j + 1]);
                i32::from(mins[2 * p]) * sum(2 * p) + i32::from(mins[2 * p + 1]) * sum(2 * p + 1)
            };
            let min_terms = [pair(0), pair(1), pair(2), pair(3)];
            if five_bits {
                sum_min[k] += dmin * min_terms.iter().sum::<i32>() as f32;
            } else {
                let terms = _mm_setr_epi32(min_terms[0], min_terms[1], min_terms[2], min_terms[3]);
                acc_min[k] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(terms), acc_min[k]);
            }
            let mut sumi = _mm256_setzero_si256();
            for (j, q) in quants.iter().enumerate() {
                // SAFETY: yq points at 256 bytes; chunk j reads 32 of them.
                let y = unsafe { _mm256_loadu_si256(yq.add(32 * j).cast()) };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(*q, y), _mm256_set1_epi16(scales[j]));
                sumi = _mm256_add_epi32(sumi, p);
            }
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[k]);
        }
    }
    std::array::from_fn(|k| {
        let m = _mm_add_ps(acc_min[k], _mm_movehl_ps(acc_min[k], acc_min[k]));
        hsum(acc[k]) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m))) + sum_min[k]
    })
}

/// Q6_K · Q8_K for `N` tokens in ggml's order: per pair of elements, the
/// unsigned six-bit quants' products minus 32 × the activations (in i16),
/// times the sub-block's scale; eight float lanes across super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6k_q8k<const N: usize>(w: &[u8], x: [&[u8]; N]) -> [f32; N] {
    let n = x.iter().fold(w.len() / 210, |n, x| n.min(x.len() / Q8K_BYTES));
    let (mask, three, thirty_two) = (_mm256_set1_epi8(15), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
    let mut acc = [_mm256_setzero_ps(); N];
    for i in 0..n {
        let wb = &w[210 * i..210 * (i + 1)];
        let scales: [i16; SUBS] = std::array::from_fn(|s| i16::from(wb[192 + s] as i8));
        // Scales of two sub-blocks of 16, one per 128-bit lane, for each vector of 32 quants.
        let pairs: [__m256i; 8] =
            std::array::from_fn(|v| _mm256_set_m128i(_mm_set1_epi16(scales[2 * v + 1]), _mm_set1_epi16(scales[2 * v])));
        // The 256 unsigned quants, in element order, 32 per vector.
        let mut quants = [_mm256_setzero_si256(); 8];
        // SAFETY: ql is wb[0..128] and qh wb[128..192]: every load stays inside.
        unsafe {
            for half in 0..2 {
                let ql = wb.as_ptr().add(64 * half);
                let qh = _mm256_loadu_si256(wb.as_ptr().add(128 + 32 * half).cast());
                let (ql0, ql1) = (_mm256_loadu_si256(ql.cast()), _mm256_loadu_si256(ql.add(32).cast()));
                let top = |k: i32| {
                    let shifted = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k));
                    _mm256_slli_epi16(_mm256_and_si256(shifted, three), 4)
                };
                quants[4 * half] = _mm256_or_si256(_mm256_and_si256(ql0, mask), top(0));
                quants[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql1, mask), top(1));
                quants[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask), top(2));
                quants[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask), top(3));
            }
        }
        let d_w = f16_at(wb, 208);
        for k in 0..N {
            let (d_x, yq, _) = q8k_parts(&x[k][Q8K_BYTES * i..Q8K_BYTES * (i + 1)]);
            let mut sumi = _mm256_setzero_si256();
            for (v, q) in quants.iter().enumerate() {
                // SAFETY: yq points at 256 bytes; vector v reads 32 of them.
                let y = unsafe { _mm256_loadu_si256(yq.add(32 * v).cast()) };
                let centred = _mm256_sub_epi16(_mm256_maddubs_epi16(*q, y), _mm256_maddubs_epi16(thirty_two, y));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(centred, pairs[v]));
            }
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d_x * d_w), _mm256_cvtepi32_ps(sumi), acc[k]);
        }
    }
    acc.map(|a| hsum(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dot_avx2::{available, vnni};

    #[test]
    fn vnni_gives_the_same_bits_as_maddubs() {
        if !(available() && vnni()) {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        }
        let blocks = 9;
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut byte = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        };
        let mut w = Vec::new();
        for b in 0..blocks {
            w.extend(half::f16::from_f32(0.01 + b as f32 * 1e-3).to_le_bytes());
            w.extend((0..20).map(|_| byte()));
        }
        let xs: Vec<Vec<u8>> = (0..4)
            .map(|t| {
                let mut x = Vec::new();
                for b in 0..blocks {
                    // Activations are quantized to ±127; our Q8_0 blocks keep their sum.
                    let qs: Vec<i8> = (0..32).map(|_| (byte() as i8).max(-127)).collect();
                    x.extend((0.02 + (t * blocks + b) as f32 * 1e-3).to_le_bytes());
                    x.extend(qs.iter().map(|&q| i32::from(q)).sum::<i32>().to_le_bytes());
                    x.extend(qs.iter().map(|&q| q as u8));
                }
                x
            })
            .collect();
        let x = [&xs[0][..], &xs[1][..], &xs[2][..], &xs[3][..]];
        // SAFETY: the CPU has AVX2, FMA, F16C and AVX-512 VNNI (checked above).
        let (with, without) = unsafe { (dot_q5_0_q8_0::<4, true>(&w, x), dot_q5_0_q8_0::<4, false>(&w, x)) };
        assert_eq!(with.map(f32::to_bits), without.map(f32::to_bits));
    }
}
