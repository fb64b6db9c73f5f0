//! What each weight block's bits mean: its quants as small integers with
//! their scales (what the portable dot kernels multiply) and its values as
//! floats (dequantization: the embedding lookup and the tests' reference).

use super::format::{BLOCK, SUPER_BLOCK, WeightFormat, f16_at};

/// A 32-element block: element j is `d * q[j] + m`.
pub(crate) struct Block {
    pub q: [i8; BLOCK],
    pub d: f32,
    pub m: f32,
}

/// Sub-blocks of 16 in a K-quant super-block.
pub(crate) const SUBS: usize = SUPER_BLOCK / 16;

/// A K-quant super-block in sub-blocks of 16: element e is
/// `(d * scales[e / 16]) * q[e] - dmin * mins[e / 16]` (Q4_K and Q5_K keep
/// one scale and min per 32, so each appears for two sub-blocks here).
pub(crate) struct SuperBlock {
    pub q: [i8; SUPER_BLOCK],
    pub scales: [i16; SUBS],
    pub mins: [i16; SUBS],
    pub d: f32,
    pub dmin: f32,
}

/// Unpacks a block of a 32-element format.
pub(crate) fn block(format: WeightFormat, b: &[u8]) -> Block {
    let mut q = [0i8; BLOCK];
    let d = f16_at(b, 0);
    let nibbles = |q: &mut [i8; BLOCK], qs: &[u8], high: u32, zero: i8| {
        for j in 0..BLOCK / 2 {
            let bit = |k: usize| (((high >> k) & 1) << 4) as u8;
            q[j] = ((qs[j] & 15) | bit(j)) as i8 - zero;
            q[j + 16] = ((qs[j] >> 4) | bit(j + 16)) as i8 - zero;
        }
    };
    let qh = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let m = match format {
        WeightFormat::Q4_0 => {
            nibbles(&mut q, &b[2..18], 0, 8);
            0.0
        }
        WeightFormat::Q4_1 => {
            nibbles(&mut q, &b[4..20], 0, 0);
            f16_at(b, 2)
        }
        WeightFormat::Q5_0 => {
            nibbles(&mut q, &b[6..22], qh(2), 16);
            0.0
        }
        WeightFormat::Q5_1 => {
            nibbles(&mut q, &b[8..24], qh(4), 0);
            f16_at(b, 2)
        }
        WeightFormat::Q8_0 => {
            for (q, &v) in q.iter_mut().zip(&b[2..34]) {
                *q = v as i8;
            }
            0.0
        }
        other => unreachable!("{other:?} has no 32-element blocks"),
    };
    Block { q, d, m }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of 8.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Unpacks a K-quant super-block.
pub(crate) fn super_block(format: WeightFormat, b: &[u8]) -> SuperBlock {
    let mut sb = SuperBlock { q: [0; SUPER_BLOCK], scales: [0; SUBS], mins: [0; SUBS], d: 0.0, dmin: 0.0 };
    match format {
        WeightFormat::Q4K | WeightFormat::Q5K => {
            (sb.d, sb.dmin) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..8 {
                let (scale, min) = scale_min_k4(j, &b[4..16]);
                sb.scales[2 * j..2 * j + 2].fill(i16::from(scale));
                sb.mins[2 * j..2 * j + 2].fill(i16::from(min));
            }
            // Chunks of 64: low nibbles are sub-block 2c, high nibbles 2c + 1;
            // Q5_K's fifth bits are bits 2c and 2c + 1 of qh[l].
            let (qh, qs) =
                if format == WeightFormat::Q5K { (Some(&b[16..48]), &b[48..176]) } else { (None, &b[16..144]) };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[32 * c + l];
                    let high = |bit: usize| qh.map_or(0, |h| ((h[l] >> bit) & 1) << 4);
                    sb.q[64 * c + l] = ((byte & 15) | high(2 * c)) as i8;
                    sb.q[64 * c + 32 + l] = ((byte >> 4) | high(2 * c + 1)) as i8;
                }
            }
        }
        WeightFormat::Q6K => {
            let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
            sb.d = f16_at(b, 208);
            for (s, &v) in sb.scales.iter_mut().zip(scales) {
                *s = i16::from(v as i8);
            }
            // Halves of 128: ql[l] and ql[l + 32] give the low four bits of
            // elements l, l + 32 (low nibbles) and l + 64, l + 96 (high
            // nibbles); qh[l] holds their top two bits in that order.
            for n in 0..2 {
                let (ql, qh) = (&ql[64 * n..64 * n + 64], &qh[32 * n..32 * n + 32]);
                for l in 0..32 {
                    let top = |k: u32| ((qh[l] >> (2 * k)) & 3) << 4;
                    let at = 128 * n + l;
                    sb.q[at] = ((ql[l] & 15) | top(0)) as i8 - 32;
                    sb.q[at + 32] = ((ql[l + 32] & 15) | top(1)) as i8 - 32;
                    sb.q[at + 64] = ((ql[l] >> 4) | top(2)) as i8 - 32;
                    sb.q[at + 96] = ((ql[l + 32] >> 4) | top(3)) as i8 - 32;
                }
            }
        }
        other => unreachable!("{other:?} is not a K-quant"),
    }
    sb
}

/// Dequantizes one row of `format` weights into `out` (`out.len()` elements),
/// with ggml's arithmetic (the same floats as its `dequantize_row_*`).
pub fn dequantize_row(format: WeightFormat, row: &[u8], out: &mut [f32]) {
    match format {
        WeightFormat::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightFormat::Q4_0 | WeightFormat::Q4_1 | WeightFormat::Q5_0 | WeightFormat::Q5_1 | WeightFormat::Q8_0 => {
            for (b, o) in row.chunks_exact(format.block_bytes()).zip(out.chunks_exact_mut(BLOCK)) {
                let Block { q, d, m } = block(format, b);
                for (o, &q) in o.iter_mut().zip(&q) {
                    *o = f32::from(q) * d + m;
                }
            }
        }
        WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q6K => {
            for (b, o) in row.chunks_exact(format.block_bytes()).zip(out.chunks_exact_mut(SUPER_BLOCK)) {
                let sb = super_block(format, b);
                for (s, o) in o.chunks_exact_mut(16).enumerate() {
                    let (scale, min) = (sb.d * f32::from(sb.scales[s]), sb.dmin * f32::from(sb.mins[s]));
                    for (o, &q) in o.iter_mut().zip(&sb.q[16 * s..16 * s + 16]) {
                        *o = scale * f32::from(q) - min;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        f16::from_f32(v).to_le_bytes()
    }

    #[test]
    fn q4_layouts_put_low_nibbles_first() {
        // d = 1, m = 0.5; byte j = (high = 15 - j % 16, low = j % 16).
        let mut block = vec![0u8; 20];
        block[..2].copy_from_slice(&f16_bytes(1.0));
        block[2..4].copy_from_slice(&f16_bytes(0.5));
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

    #[test]
    fn q5_takes_the_fifth_bit_of_element_j_from_bit_j() {
        // All nibbles 0; qh sets elements 3 and 20.
        let qh = (1u32 << 3) | (1 << 20);
        let q5_0: Vec<u8> = [&f16_bytes(2.0)[..], &qh.to_le_bytes(), &[0u8; 16]].concat();
        let mut out = [0f32; 32];
        dequantize_row(WeightFormat::Q5_0, &q5_0, &mut out);
        assert_eq!((out[0], out[3], out[20], out[31]), (-32.0, 0.0, 0.0, -32.0));
        let q5_1: Vec<u8> = [&f16_bytes(2.0)[..], &f16_bytes(1.0), &qh.to_le_bytes(), &[0x21u8; 16]].concat();
        dequantize_row(WeightFormat::Q5_1, &q5_1, &mut out);
        // Element 3: low nibble 1 + 16 → 17 · 2 + 1; element 20: high nibble 2 + 16 → 18 · 2 + 1.
        assert_eq!((out[0], out[3], out[16], out[20]), (3.0, 35.0, 5.0, 37.0));
    }

    #[test]
    fn k_quant_scales_and_bits_land_where_ggml_puts_them() {
        // Q4_K: d = 1, dmin = 0.5; sub-block j has scale j + 1 and min 2j
        // (6 bits each, packed as get_scale_min_k4 reads them).
        let mut scales = [0u8; 12];
        for j in 0..8u8 {
            let (sc, m) = (j + 1, 2 * j);
            if j < 4 {
                scales[j as usize] = sc;
                scales[j as usize + 4] = m;
            } else {
                let k = j as usize;
                scales[k + 4] = (sc & 15) | ((m & 15) << 4);
                scales[k - 4] |= (sc >> 4) << 6;
                scales[k] |= (m >> 4) << 6;
            }
        }
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &scales), (j as u8 + 1, 2 * j as u8));
        }
        // Nibbles: byte 32c + l = (high 1, low 2) everywhere.
        let q4k: Vec<u8> = [&f16_bytes(1.0)[..], &f16_bytes(0.5), &scales, &[0x12u8; 128]].concat();
        let mut out = [0f32; 256];
        dequantize_row(WeightFormat::Q4K, &q4k, &mut out);
        // Element 64c + l: sub-block 2c, q = 2; 64c + 32 + l: sub-block 2c + 1, q = 1.
        for c in 0..4 {
            let (lo, hi) = (2 * c as i32, 2 * c as i32 + 1);
            assert_eq!(out[64 * c + 5], ((lo + 1) * 2) as f32 - 0.5 * (2 * lo) as f32);
            assert_eq!(out[64 * c + 40], (hi + 1) as f32 - 0.5 * (2 * hi) as f32);
        }
        // Q5_K: qh[7] bit 3 → element 64 · 1 + 32 + 7 gets + 16.
        let mut qh = [0u8; 32];
        qh[7] = 1 << 3;
        let q5k: Vec<u8> = [&f16_bytes(1.0)[..], &f16_bytes(0.5), &scales, &qh, &[0x12u8; 128]].concat();
        dequantize_row(WeightFormat::Q5K, &q5k, &mut out);
        assert_eq!(out[64 + 32 + 7], 4.0 * 17.0 - 0.5 * 6.0);
        assert_eq!(out[64 + 32 + 8], 4.0 * 1.0 - 0.5 * 6.0);
        // Q6_K: d = 0.5, scale of sub-block s is s - 8; ql all 0x31, qh[l] = 0b11_10_01_00 in half 1.
        let scales6: Vec<u8> = (0..16).map(|s: i8| (s - 8) as u8).collect();
        let mut qh6 = [0u8; 64];
        qh6[32..].fill(0b1110_0100);
        let q6k: Vec<u8> = [&[0x31u8; 128][..], &qh6, &scales6, &f16_bytes(0.5)].concat();
        dequantize_row(WeightFormat::Q6K, &q6k, &mut out);
        let value = |e: usize, q: i32| (0.5 * ((e / 16) as i32 - 8) as f32) * (q - 32) as f32;
        // Half 0: low nibble 1 → q = 1 at l and l + 32, high nibble 3 → q = 3 at l + 64, l + 96.
        assert_eq!(out[5], value(5, 1));
        assert_eq!(out[70], value(70, 3));
        // Half 1: top bits 0, 1, 2, 3 for the four elements of each l.
        assert_eq!(out[128 + 5], value(128 + 5, 1));
        assert_eq!(out[128 + 32 + 5], value(128 + 32 + 5, 1 | (1 << 4)));
        assert_eq!(out[128 + 64 + 5], value(128 + 64 + 5, 3 | (2 << 4)));
        assert_eq!(out[128 + 96 + 5], value(128 + 96 + 5, 3 | (3 << 4)));
    }
}
