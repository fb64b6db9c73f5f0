//! AVX2 kernels for the weight types of K-quant files: Q5_0 and Q5_1 (what
//! llama.cpp's quantizer falls back to for rows that are not a multiple of
//! 256) and Q4_K, Q5_K, Q6_K against Q8_K activations. Quants are widened to
//! bytes, multiplied with `maddubs` (unsigned × signed → i16 pairs) and summed
//! with `madd` against each sub-block's integer scale; the K-quants' mins and
//! Q6_K's offset of 32 go through Q8_K's sums of 16, once per sub-block.

use std::arch::x86_64::*;

use super::blocks::SUBS;
use super::dot_avx2::{hsum, scale_product, signed_products, unpack_nibbles};
use super::format::{Q8K_BYTES, SUPER_BLOCK, f16_at};

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

/// Q5_0 · Q8_0: the fifth bit set keeps the nibble, unset turns it into
/// nibble − 16 (its byte's top four bits set), so the quants come out signed.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 22).min(x.len() / 34);
    let mut acc = _mm256_setzero_ps();
    for i in 0..n {
        // SAFETY: block i spans w[22i..22i+22] and x[34i..34i+34], inside both slices.
        unsafe {
            let (wb, xb) = (w.as_ptr().add(22 * i), x.as_ptr().add(34 * i));
            let d = scale_product(wb, xb);
            let low = unpack_nibbles(_mm_loadu_si128(wb.add(6).cast()));
            let high = _mm256_andnot_si256(bytes_from_bits(wb.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
            let xq = _mm256_loadu_si256(xb.add(2).cast());
            acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), signed_products(_mm256_or_si256(low, high), xq), acc);
        }
    }
    hsum(acc)
}

/// Q5_1 · Q8_1: unsigned five-bit quants, the offset through Q8_1's sum.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q5_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 24).min(x.len() / 36);
    let ones = _mm256_set1_epi16(1);
    let (mut acc, mut offsets) = (_mm256_setzero_ps(), _mm_setzero_ps());
    for i in 0..n {
        // SAFETY: block i spans w[24i..24i+24] and x[36i..36i+36], inside both slices.
        unsafe {
            let (wb, xb) = (w.as_ptr().add(24 * i), x.as_ptr().add(36 * i));
            // Lanes [d_w, m_w, d_x, s_x] → [d_w·d_x, m_w·s_x].
            let (wh, xh) = (wb.cast::<i32>().read_unaligned(), xb.cast::<i32>().read_unaligned());
            let h = _mm_cvtph_ps(_mm_set_epi32(0, 0, xh, wh));
            let scales = _mm_mul_ps(h, _mm_movehl_ps(h, h));
            offsets = _mm_add_ps(offsets, scales);
            let low = unpack_nibbles(_mm_loadu_si128(wb.add(8).cast()));
            let high = _mm256_and_si256(bytes_from_bits(wb.add(4)), _mm256_set1_epi8(0x10));
            let xq = _mm256_loadu_si256(xb.add(4).cast());
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_or_si256(low, high), xq), ones);
            acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), _mm256_cvtepi32_ps(p), acc);
        }
    }
    hsum(acc) + _mm_cvtss_f32(_mm_shuffle_ps(offsets, offsets, 1))
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

/// Q4_K or Q5_K (`qh` the fifth bits) · Q8_K, summed in ggml's order (so
/// greedy text follows llama.cpp's at near-ties): the scale terms in eight
/// float lanes across super-blocks, the min terms per pair of sub-blocks in
/// four lanes (Q4_K) or as one running float (Q5_K).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q45k_q8k(w: &[u8], x: &[u8], five_bits: bool) -> f32 {
    let block = if five_bits { 176 } else { 144 };
    let n = (w.len() / block).min(x.len() / Q8K_BYTES);
    let (mask, one) = (_mm256_set1_epi8(15), _mm256_set1_epi8(1));
    let (mut acc, mut acc_min, mut sum_min) = (_mm256_setzero_ps(), _mm_setzero_ps(), 0f32);
    for i in 0..n {
        let (wb, xb) = (&w[block * i..block * (i + 1)], &x[Q8K_BYTES * i..Q8K_BYTES * (i + 1)]);
        let (d_x, yq, sums) = q8k_parts(xb);
        let (d, dmin) = (d_x * f16_at(wb, 0), -d_x * f16_at(wb, 2));
        let (scales, mins) = scales_mins_k4(&wb[4..16]);
        // Per pair of sub-blocks of 32: Σ min · (the activations' sum over the sub-block).
        let pair = |k: usize| {
            let sum = |j: usize| i32::from(sums[2 * j]) + i32::from(sums[2 * j + 1]);
            i32::from(mins[2 * k]) * sum(2 * k) + i32::from(mins[2 * k + 1]) * sum(2 * k + 1)
        };
        let min_terms = [pair(0), pair(1), pair(2), pair(3)];
        if five_bits {
            sum_min += dmin * min_terms.iter().sum::<i32>() as f32;
        } else {
            let terms = _mm_setr_epi32(min_terms[0], min_terms[1], min_terms[2], min_terms[3]);
            acc_min = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(terms), acc_min);
        }
        let qs = if five_bits { &wb[48..] } else { &wb[16..] };
        let mut sumi = _mm256_setzero_si256();
        // SAFETY: qs holds 128 bytes (and qh 32), yq 256: every load below stays inside.
        unsafe {
            let qh = if five_bits { _mm256_loadu_si256(wb[16..].as_ptr().cast()) } else { _mm256_setzero_si256() };
            for c in 0..4 {
                let q4 = _mm256_loadu_si256(qs.as_ptr().add(32 * c).cast());
                let mut lo = _mm256_and_si256(q4, mask);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), mask);
                if five_bits {
                    let bit = |k: i32| {
                        let shifted = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(k));
                        _mm256_slli_epi16(_mm256_and_si256(shifted, one), 4)
                    };
                    lo = _mm256_or_si256(lo, bit(2 * c as i32));
                    hi = _mm256_or_si256(hi, bit(2 * c as i32 + 1));
                }
                let ylo = _mm256_loadu_si256(yq.add(64 * c).cast());
                let yhi = _mm256_loadu_si256(yq.add(64 * c + 32).cast());
                let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_set1_epi16(scales[2 * c]));
                let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), _mm256_set1_epi16(scales[2 * c + 1]));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(plo, phi));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    let m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
    hsum(acc) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m))) + sum_min
}

/// Q6_K · Q8_K in ggml's order: per pair of elements, the unsigned six-bit
/// quants' products minus 32 × the activations (in i16), times the
/// sub-block's scale; eight float lanes across super-blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_q6k_q8k(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 210).min(x.len() / Q8K_BYTES);
    let (mask, three, thirty_two) = (_mm256_set1_epi8(15), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
    let mut acc = _mm256_setzero_ps();
    for i in 0..n {
        let (wb, xb) = (&w[210 * i..210 * (i + 1)], &x[Q8K_BYTES * i..Q8K_BYTES * (i + 1)]);
        let (d_x, yq, _) = q8k_parts(xb);
        let scales: [i16; SUBS] = std::array::from_fn(|s| i16::from(wb[192 + s] as i8));
        // Scales of two sub-blocks of 16, one per 128-bit lane.
        let pair = |s: usize| _mm256_set_m128i(_mm_set1_epi16(scales[s + 1]), _mm_set1_epi16(scales[s]));
        let mut sumi = _mm256_setzero_si256();
        // SAFETY: ql is wb[0..128], qh wb[128..192], yq 256 bytes: every load below stays inside.
        unsafe {
            for half in 0..2 {
                let ql = wb.as_ptr().add(64 * half);
                let qh = _mm256_loadu_si256(wb.as_ptr().add(128 + 32 * half).cast());
                let (ql0, ql1) = (_mm256_loadu_si256(ql.cast()), _mm256_loadu_si256(ql.add(32).cast()));
                let top = |k: i32| {
                    let shifted = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k));
                    _mm256_slli_epi16(_mm256_and_si256(shifted, three), 4)
                };
                let quants = [
                    _mm256_or_si256(_mm256_and_si256(ql0, mask), top(0)),
                    _mm256_or_si256(_mm256_and_si256(ql1, mask), top(1)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask), top(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask), top(3)),
                ];
                for (k, q) in quants.into_iter().enumerate() {
                    let y = _mm256_loadu_si256(yq.add(128 * half + 32 * k).cast());
                    let centred = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(thirty_two, y));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(centred, pair(8 * half + 2 * k)));
                }
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d_x * f16_at(wb, 208)), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc)
}
