//! Prompt processing for Q5_0 weights with AVX-512 VNNI: the bulk of a
//! Q4_K_M file whose rows are not a multiple of 256 (SmolLM2's 576). Sixteen
//! tokens go as eight pairs, one pair per 512-bit vector: a weight block is
//! unpacked once and broadcast to both halves, and the activations are
//! rearranged once per call ([`pack`]) so that each pair's quants, scales and
//! sum correction are one aligned load each. Each half computes exactly what
//! the 256-bit kernel computes for its token (`dot_q5_0_q8_0`), so a token's
//! result does not depend on which path or group it went through.

use std::arch::x86_64::*;
use std::ops::Range;

use super::dot::{ActRows, ROW_TILE, WeightRows};
use super::dot_avx2::hsum;
use super::dot_avx2_q5k::dot_q5_0_q8_0;
use super::format::{BLOCK, Q8_0_BYTES, Q8_QUANTS_AT, f32_at};

/// Tokens per group.
pub(super) const GROUP: usize = 16;

/// Pairs of tokens per group.
const PAIRS: usize = GROUP / 2;

/// Whether this CPU can run [`tiles`].
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vnni")
        && super::dot_avx2::available()
        && super::dot_avx2::vnni()
}

/// One block of a pair of tokens: both tokens' quants, each token's scale in
/// its eight lanes, and −16 · Σ q of each in the first lane of its half.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct PairBlock {
    quants: [u8; 2 * BLOCK],
    scales: [f32; 16],
    start: [i32; 16],
}

/// The activations of tokens `first..first + 8`, as `[block][pair]`.
fn pack(acts: &ActRows, first: usize, out: &mut Vec<PairBlock>) {
    let blocks = acts.row_bytes / Q8_0_BYTES;
    let block = |t: usize, b: usize| {
        let at = (first + t) * acts.row_bytes + b * Q8_0_BYTES;
        &acts.data[at..at + Q8_0_BYTES]
    };
    for b in 0..blocks {
        for pair in 0..GROUP / 2 {
            let mut packed = PairBlock { quants: [0; 2 * BLOCK], scales: [0.0; 16], start: [0; 16] };
            for half in 0..2 {
                let x = block(2 * pair + half, b);
                packed.quants[half * BLOCK..(half + 1) * BLOCK].copy_from_slice(&x[Q8_QUANTS_AT..]);
                packed.scales[half * 8..(half + 1) * 8].fill(f32_at(x, 0));
                packed.start[half * 8] = -16 * i32::from_le_bytes([x[4], x[5], x[6], x[7]]);
            }
            out.push(packed);
        }
    }
}

/// One Q5_0 row · a group of packed tokens.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn dot_group(w: &[u8], packed: &[PairBlock]) -> [f32; GROUP] {
    let n = (w.len() / 22).min(packed.len() / PAIRS);
    let mut acc = [_mm512_setzero_ps(); PAIRS];
    // Per 128-bit lane: the nibbles as they are (elements 0..16), then shifted down (16..32).
    let (shifts, low4, sixteen) =
        (_mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4), _mm512_set1_epi8(15), _mm512_set1_epi8(16));
    for (i, x) in packed.chunks_exact(PAIRS).take(n).enumerate() {
        // SAFETY: block i spans w[22i..22i+22], inside the slice.
        let wb = unsafe { w.as_ptr().add(22 * i) };
        // The block's quants + 16 in both halves: nibbles, then 16 added where the fifth bit is set.
        // SAFETY: qs is the block's last 16 bytes, qh the 4 after d.
        let (qs, qh) = unsafe { (_mm_loadu_si128(wb.add(6).cast()), wb.add(2).cast::<u32>().read_unaligned()) };
        let nibbles = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i32x4(qs), shifts), low4);
        let wu = _mm512_mask_add_epi8(nibbles, u64::from(qh) | (u64::from(qh) << 32), nibbles, sixteen);
        // SAFETY: the same block's first two bytes. Widened here, not by a
        // call: a call in this loop spilled every accumulator around it.
        let bits = unsafe { wb.cast::<u16>().read_unaligned() };
        let d_w = _mm512_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))));
        for (acc, x) in acc.iter_mut().zip(x) {
            // SAFETY: each field is 64 bytes at a 64-byte boundary (`repr(align(64))`).
            let (quants, scales, start) = unsafe {
                (
                    _mm512_load_si512(x.quants.as_ptr().cast()),
                    _mm512_load_ps(x.scales.as_ptr()),
                    _mm512_load_si512(x.start.as_ptr().cast()),
                )
            };
            let sums = _mm512_dpbusd_epi32(start, wu, quants);
            *acc = _mm512_fmadd_ps(_mm512_mul_ps(d_w, scales), _mm512_cvtepi32_ps(sums), *acc);
        }
    }
    let halves = |acc: __m512| {
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1));
        [hsum(_mm512_castps512_ps256(acc)), hsum(high)]
    };
    let mut out = [0f32; GROUP];
    for (pair, acc) in out.chunks_exact_mut(2).zip(acc) {
        pair.copy_from_slice(&halves(acc));
    }
    out
}

/// Q5_0 rows · every token, a group of tokens at a time and the rest one by one
/// with the 256-bit kernel; callers check [`available`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub(super) fn tiles(w: WeightRows, rows: Range<usize>, acts: ActRows, out: &mut [f32]) {
    let width = rows.len();
    assert!(out.len() >= acts.tokens * width, "output too short for {} tokens × {width} rows", acts.tokens);
    let groups = acts.tokens / GROUP;
    let per_group = acts.row_bytes / Q8_0_BYTES * (GROUP / 2);
    let mut packed = Vec::with_capacity(groups * per_group);
    for g in 0..groups {
        pack(&acts, g * GROUP, &mut packed);
    }
    let row = |r: usize| &w.data[r * w.row_bytes..(r + 1) * w.row_bytes];
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + ROW_TILE).min(rows.end);
        for g in 0..groups {
            let group = &packed[g * per_group..(g + 1) * per_group];
            for r in start..end {
                for (k, v) in dot_group(row(r), group).into_iter().enumerate() {
                    out[(g * GROUP + k) * width + r - rows.start] = v;
                }
            }
        }
        for t in groups * GROUP..acts.tokens {
            let x = &acts.data[t * acts.row_bytes..(t + 1) * acts.row_bytes];
            for r in start..end {
                out[t * width + r - rows.start] = dot_q5_0_q8_0::<1, true>(row(r), [x])[0];
            }
        }
        start = end;
    }
}
