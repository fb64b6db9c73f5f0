//! Dot products of quantized weight rows with quantized activation rows, for
//! every (token, row) pair of a tile. The portable kernels here are the
//! reference; `dot_avx2` holds the SIMD ones, picked at run time.

use std::ops::Range;

use super::blocks::{SUBS, block, super_block};
use super::format::{
    BLOCK, Q8_0_BYTES, Q8_1_BYTES, Q8_QUANTS_AT, Q8K_BYTES, SUPER_BLOCK, WeightFormat, f16_at, f32_at,
};

/// Rows handled together, so one tile of weights stays in L1 while every
/// token's activations pass over it.
pub(super) const ROW_TILE: usize = 16;

/// A weight matrix's bytes as the kernels see them.
#[derive(Clone, Copy)]
pub(super) struct WeightRows<'a> {
    pub format: WeightFormat,
    pub data: &'a [u8],
    pub row_bytes: usize,
}

/// Quantized activations: `tokens` rows of `row_bytes` each.
#[derive(Clone, Copy)]
pub(super) struct ActRows<'a> {
    pub data: &'a [u8],
    pub row_bytes: usize,
    pub tokens: usize,
}

/// Writes `w_row · act_token` for every row in `rows` and every token to
/// `out[token * rows.len() + row - rows.start]`, with the fastest kernel this
/// CPU has.
pub(super) fn dot_rows(w: WeightRows, rows: Range<usize>, acts: ActRows, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if w.format == WeightFormat::Q5_0
        && acts.tokens >= super::dot_avx512_q5_0::GROUP
        && super::dot_avx512_q5_0::available()
    {
        // SAFETY: the CPU has AVX-512 F, BW, VL and VNNI, AVX2, FMA and F16C (checked above).
        unsafe { super::dot_avx512_q5_0::tiles(w, rows, acts, out) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::dot_avx2::available() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
        unsafe { super::dot_avx2::dot_rows(w, rows, acts, out) };
        return;
    }
    dot_rows_portable(w, rows, acts, out);
}

/// [`dot_rows`] with the portable kernels (also the tests' reference).
pub(super) fn dot_rows_portable(w: WeightRows, rows: Range<usize>, acts: ActRows, out: &mut [f32]) {
    match w.format {
        WeightFormat::F32 => tiles(w, rows, acts, out, dot_f32),
        WeightFormat::Q4_0 => tiles(w, rows, acts, out, dot_q4_0_q8_0),
        WeightFormat::Q4_1 => tiles(w, rows, acts, out, dot_q4_1_q8_1),
        WeightFormat::Q8_0 => tiles(w, rows, acts, out, dot_q8_0_q8_0),
        WeightFormat::Q5_0 | WeightFormat::Q5_1 => tiles(w, rows, acts, out, |a, b| dot_q5_q8(w.format, a, b)),
        WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q6K => {
            tiles(w, rows, acts, out, |a, b| dot_k_q8k(w.format, a, b))
        }
    }
}

/// The tile loop shared by every kernel.
#[inline(always)]
pub(super) fn tiles(
    w: WeightRows,
    rows: Range<usize>,
    acts: ActRows,
    out: &mut [f32],
    dot: impl Fn(&[u8], &[u8]) -> f32,
) {
    let width = rows.len();
    assert!(out.len() >= acts.tokens * width, "output too short for {} tokens × {width} rows", acts.tokens);
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + ROW_TILE).min(rows.end);
        for (t, a) in acts.data.chunks_exact(acts.row_bytes).take(acts.tokens).enumerate() {
            let out = &mut out[t * width..(t + 1) * width];
            for r in start..end {
                out[r - rows.start] = dot(&w.data[r * w.row_bytes..(r + 1) * w.row_bytes], a);
            }
        }
        start = end;
    }
}

fn dot_f32(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [0f32; 8];
    for (wc, xc) in w.chunks_exact(32).zip(x.chunks_exact(32)) {
        for (i, a) in acc.iter_mut().enumerate() {
            let at = 4 * i;
            *a += f32::from_le_bytes([wc[at], wc[at + 1], wc[at + 2], wc[at + 3]])
                * f32::from_le_bytes([xc[at], xc[at + 1], xc[at + 2], xc[at + 3]]);
        }
    }
    let tail: f32 = w
        .chunks_exact(32)
        .remainder()
        .chunks_exact(4)
        .zip(x.chunks_exact(32).remainder().chunks_exact(4))
        .map(|(a, b)| f32::from_le_bytes([a[0], a[1], a[2], a[3]]) * f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .sum();
    acc.iter().sum::<f32>() + tail
}

/// Σ over the 16 packed bytes of `w_qs` of (nibble - zero) · x for both halves.
#[inline(always)]
fn nibble_dot(w_qs: &[u8], x_qs: &[u8], zero: i32) -> i32 {
    let mut sum = 0i32;
    for j in 0..BLOCK / 2 {
        let (lo, hi) = (i32::from(w_qs[j] & 15) - zero, i32::from(w_qs[j] >> 4) - zero);
        sum += lo * i32::from(x_qs[j] as i8) + hi * i32::from(x_qs[j + 16] as i8);
    }
    sum
}

fn dot_q4_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    w.chunks_exact(18)
        .zip(x.chunks_exact(Q8_0_BYTES))
        .map(|(wb, xb)| f16_at(wb, 0) * f32_at(xb, 0) * nibble_dot(&wb[2..], &xb[Q8_QUANTS_AT..], 8) as f32)
        .sum()
}

fn dot_q4_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    w.chunks_exact(20)
        .zip(x.chunks_exact(Q8_1_BYTES))
        .map(|(wb, xb)| {
            f16_at(wb, 0) * f32_at(xb, 0) * nibble_dot(&wb[4..], &xb[8..], 0) as f32 + f16_at(wb, 2) * f32_at(xb, 4)
        })
        .sum()
}

fn dot_q8_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    w.chunks_exact(34)
        .zip(x.chunks_exact(Q8_0_BYTES))
        .map(|(wb, xb)| {
            let sum: i32 =
                wb[2..].iter().zip(&xb[Q8_QUANTS_AT..]).map(|(&a, &b)| i32::from(a as i8) * i32::from(b as i8)).sum();
            f16_at(wb, 0) * f32_at(xb, 0) * sum as f32
        })
        .sum()
}

/// Q5_0 · Q8_0 or Q5_1 · Q8_1, block by block through the unpacked quants.
fn dot_q5_q8(format: WeightFormat, w: &[u8], x: &[u8]) -> f32 {
    // Q8_1 blocks carry `s = d · Σ q` after `d`.
    let (x_bytes, offset) = if format == WeightFormat::Q5_1 { (Q8_1_BYTES, true) } else { (Q8_0_BYTES, false) };
    w.chunks_exact(format.block_bytes())
        .zip(x.chunks_exact(x_bytes))
        .map(|(wb, xb)| {
            let b = block(format, wb);
            let sum: i32 = b.q.iter().zip(&xb[Q8_QUANTS_AT..]).map(|(&p, &q)| i32::from(p) * i32::from(q as i8)).sum();
            let offset = if offset { b.m * f32_at(xb, 4) } else { 0.0 };
            b.d * f32_at(xb, 0) * sum as f32 + offset
        })
        .sum()
}

/// A K-quant row · a Q8_K row: integer sums per sub-block of 16 times the
/// sub-block's scale, and the mins through Q8_K's sums of 16.
fn dot_k_q8k(format: WeightFormat, w: &[u8], x: &[u8]) -> f32 {
    w.chunks_exact(format.block_bytes())
        .zip(x.chunks_exact(Q8K_BYTES))
        .map(|(wb, xb)| {
            let sb = super_block(format, wb);
            let d_x = f32::from_le_bytes([xb[0], xb[1], xb[2], xb[3]]);
            let (qs, sums) = (&xb[4..4 + SUPER_BLOCK], &xb[4 + SUPER_BLOCK..]);
            let (mut sumi, mut summ) = (0i32, 0i32);
            for s in 0..SUBS {
                let part: i32 = (16 * s..16 * s + 16).map(|e| i32::from(sb.q[e]) * i32::from(qs[e] as i8)).sum();
                sumi += i32::from(sb.scales[s]) * part;
                summ += i32::from(sb.mins[s]) * i32::from(i16::from_le_bytes([sums[2 * s], sums[2 * s + 1]]));
            }
            d_x * (sb.d * sumi as f32 - sb.dmin * summ as f32)
        })
        .sum()
}
