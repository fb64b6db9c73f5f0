//! A weight matrix in a GGML block format and the activations it multiplies.

use std::ops::Range;

use super::blocks::dequantize_row;
use super::dot::{ActRows, WeightRows, dot_rows};
use super::format::{ActFormat, WeightFormat, quantize_row};

/// `rows × cols` weights, row-major, each row a whole number of blocks.
#[derive(Debug, Clone)]
pub struct QMatrix {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Vec<u8>,
}

impl QMatrix {
    /// Wraps `data` (GGML's bytes for a `[rows, cols]` tensor); the error says
    /// which size does not fit.
    pub fn new(format: WeightFormat, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, String> {
        let Some(row_bytes) = format.row_bytes(cols) else {
            return Err(format!("{cols} columns are not a whole number of {format:?} blocks"));
        };
        if data.len() != rows * row_bytes {
            return Err(format!(
                "{} bytes for {rows}×{cols} {format:?} weights, expected {}",
                data.len(),
                rows * row_bytes
            ));
        }
        Ok(Self { format, rows, cols, row_bytes, data })
    }

    /// An F32 matrix from floats.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        Self::new(WeightFormat::F32, rows, cols, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Row `r` as floats, into `out` (`cols` long): an embedding lookup.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        dequantize_row(self.format, &self.data[r * self.row_bytes..(r + 1) * self.row_bytes], out);
    }

    /// `w_row · x_token` for each row in `rows` and each token of `acts`, into
    /// `out[token * rows.len() + row - rows.start]`. `acts` must have been
    /// quantized for this format; `rows` must lie inside the matrix.
    pub fn dot_rows(&self, rows: Range<usize>, acts: &Activations, out: &mut [f32]) {
        assert_eq!((acts.format, acts.cols), (self.format.act_format(), self.cols), "activations of another format");
        assert!(rows.start <= rows.end && rows.end <= self.rows, "rows {rows:?} outside 0..{}", self.rows);
        dot_rows(self.weight_rows(), rows, acts.rows(), out);
    }

    fn weight_rows(&self) -> WeightRows<'_> {
        WeightRows { format: self.format, data: &self.data, row_bytes: self.row_bytes }
    }

    #[cfg(test)]
    fn dot_rows_portable(&self, rows: Range<usize>, acts: &Activations, out: &mut [f32]) {
        super::dot::dot_rows_portable(self.weight_rows(), rows, acts.rows(), out);
    }
}

/// Activation rows (one per token) quantized for one weight format; the
/// buffer is reused from call to call.
#[derive(Debug, Clone)]
pub struct Activations {
    format: ActFormat,
    cols: usize,
    tokens: usize,
    data: Vec<u8>,
}

impl Default for Activations {
    fn default() -> Self {
        Self { format: ActFormat::F32, cols: 0, tokens: 0, data: Vec::new() }
    }
}

impl Activations {
    /// Tokens (rows) held.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Quantizes `x` (`tokens × cols` floats) for weights in `weights`' format.
    pub fn quantize(&mut self, weights: WeightFormat, x: &[f32], cols: usize) {
        self.format = weights.act_format();
        self.cols = cols;
        self.tokens = x.len() / cols;
        let row_bytes = self.format.row_bytes(cols);
        self.data.resize(self.tokens * row_bytes, 0);
        for (xs, out) in x.chunks_exact(cols).zip(self.data.chunks_exact_mut(row_bytes)) {
            quantize_row(self.format, xs, out);
        }
    }

    fn rows(&self) -> ActRows<'_> {
        ActRows { data: &self.data, row_bytes: self.format.row_bytes(self.cols), tokens: self.tokens }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;
    use crate::format::{BLOCK, Q8_0_BYTES, Q8_1_BYTES, Q8_QUANTS_AT, Q8K_BYTES, SUPER_BLOCK};

    /// Deterministic values with a roughly unit spread (xorshift; the tests
    /// need variety, not statistical quality).
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.4
            })
            .collect()
    }

    /// Random blocks of `format`: every bit pattern of the quants, with
    /// realistic scales (random f16 bits could be infinite or NaN).
    fn random_matrix(format: WeightFormat, rows: usize, cols: usize, seed: u64) -> QMatrix {
        let values = noise(rows * cols, seed);
        if format == WeightFormat::F32 {
            return QMatrix::from_f32(rows, cols, &values).unwrap();
        }
        let row_bytes = format.row_bytes(cols).unwrap();
        let mut data: Vec<u8> = noise(rows * row_bytes, seed + 1).iter().map(|v| (v.to_bits() >> 7) as u8).collect();
        let scale = |k: usize| f16::from_f32(0.002 + values[k % values.len()].abs() * 0.004).to_le_bytes();
        for (k, b) in data.chunks_exact_mut(format.block_bytes()).enumerate() {
            // (offset of d, offset of the min or offset field if any)
            let (d_at, m_at) = match format {
                WeightFormat::Q4_0 | WeightFormat::Q5_0 | WeightFormat::Q8_0 => (0, None),
                WeightFormat::Q4_1 | WeightFormat::Q5_1 | WeightFormat::Q4K | WeightFormat::Q5K => (0, Some(2)),
                WeightFormat::Q6K => (208, None),
                WeightFormat::F32 => unreachable!(),
            };
            b[d_at..d_at + 2].copy_from_slice(&scale(k));
            if let Some(at) = m_at {
                b[at..at + 2].copy_from_slice(&scale(k + 7));
            }
        }
        QMatrix::new(format, rows, cols, data).unwrap()
    }

    /// The activations as the kernels see them (dequantized).
    fn activation_values(acts: &Activations, t: usize) -> Vec<f32> {
        let cols = acts.cols;
        let row_bytes = acts.format.row_bytes(cols);
        let bytes = &acts.data[t * row_bytes..(t + 1) * row_bytes];
        let mut v = vec![0f32; cols];
        match acts.format {
            ActFormat::F32 => dequantize_row(WeightFormat::F32, bytes, &mut v),
            ActFormat::Q8_0 | ActFormat::Q8_1 => {
                // d as f32, the sum, then the quants.
                let block = if acts.format == ActFormat::Q8_0 { Q8_0_BYTES } else { Q8_1_BYTES };
                for (b, o) in bytes.chunks(block).zip(v.chunks_mut(BLOCK)) {
                    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    for (o, &q) in o.iter_mut().zip(&b[Q8_QUANTS_AT..]) {
                        *o = d * f32::from(q as i8);
                    }
                }
            }
            ActFormat::Q8K => {
                for (b, o) in bytes.chunks(Q8K_BYTES).zip(v.chunks_mut(SUPER_BLOCK)) {
                    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    for (o, &q) in o.iter_mut().zip(&b[4..4 + SUPER_BLOCK]) {
                        *o = d * f32::from(q as i8);
                    }
                }
            }
        }
        v
    }

    fn all_dots(m: &QMatrix, acts: &Activations, portable: bool) -> Vec<f32> {
        let mut out = vec![f32::NAN; acts.tokens * m.rows()];
        if portable {
            m.dot_rows_portable(0..m.rows(), acts, &mut out)
        } else {
            m.dot_rows(0..m.rows(), acts, &mut out)
        }
        out
    }

    /// Both kernels against an f64 dot of the dequantized weights and the
    /// dequantized activations: they must agree to f32 rounding of a sum.
    #[test]
    fn kernels_match_a_float64_dot_of_the_dequantized_values() {
        // 19 tokens: groups of 4, 8 or 16 (the prompt kernels) and single ones.
        let (rows, tokens) = (37, 19);
        let formats = [
            WeightFormat::F32,
            WeightFormat::Q4_0,
            WeightFormat::Q4_1,
            WeightFormat::Q5_0,
            WeightFormat::Q5_1,
            WeightFormat::Q8_0,
            WeightFormat::Q4K,
            WeightFormat::Q5K,
            WeightFormat::Q6K,
        ];
        for (i, format) in formats.into_iter().enumerate() {
            let cols = 2 * SUPER_BLOCK + if format.block_len() == BLOCK { 3 * BLOCK } else { 0 };
            let m = random_matrix(format, rows, cols, 10 + i as u64);
            let x = noise(tokens * cols, 99);
            let mut acts = Activations::default();
            acts.quantize(format, &x, cols);
            let act_rows: Vec<Vec<f32>> = (0..tokens).map(|t| activation_values(&acts, t)).collect();
            let simd = all_dots(&m, &acts, false);
            let portable = all_dots(&m, &acts, true);
            let mut w = vec![0f32; cols];
            for r in 0..rows {
                m.dequantize_row(r, &mut w);
                for (t, a) in act_rows.iter().enumerate() {
                    let exact: f64 = w.iter().zip(a).map(|(&p, &q)| f64::from(p) * f64::from(q)).sum();
                    let scale: f64 = w.iter().zip(a).map(|(&p, &q)| f64::from(p * q).abs()).sum();
                    // Q8_1's sum field is f16-rounded: allow its 2⁻¹¹ relative error on the offset term.
                    let offset_sum = matches!(format, WeightFormat::Q4_1 | WeightFormat::Q5_1);
                    let bound = 2e-6 * scale + if offset_sum { 2e-3 * scale } else { 0.0 };
                    for (kernel, got) in [("simd", simd[t * rows + r]), ("portable", portable[t * rows + r])] {
                        assert!(
                            (f64::from(got) - exact).abs() <= bound,
                            "{format:?} {kernel} row {r} token {t}: {got} vs {exact} (bound {bound})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_token_gets_the_same_bits_alone_as_in_a_group() {
        let formats = [
            WeightFormat::Q4_1,
            WeightFormat::Q5_0,
            WeightFormat::Q5_1,
            WeightFormat::Q4K,
            WeightFormat::Q5K,
            WeightFormat::Q6K,
        ];
        for (i, format) in formats.into_iter().enumerate() {
            // Groups of 4, 8 or 16 tokens, and leftovers.
            let (rows, cols, tokens) = (19, 2 * SUPER_BLOCK, 19);
            let m = random_matrix(format, rows, cols, 40 + i as u64);
            let x = noise(tokens * cols, 7);
            let mut acts = Activations::default();
            acts.quantize(format, &x, cols);
            let together = all_dots(&m, &acts, false);
            for t in 0..tokens {
                let mut alone = Activations::default();
                alone.quantize(format, &x[t * cols..(t + 1) * cols], cols);
                assert_eq!(all_dots(&m, &alone, false), together[t * rows..(t + 1) * rows], "{format:?} token {t}");
            }
        }
    }

    #[test]
    fn a_row_range_gives_the_same_values_as_the_whole_matrix() {
        let m = random_matrix(WeightFormat::Q4_1, 40, 64, 3);
        let mut acts = Activations::default();
        acts.quantize(m.format(), &noise(2 * 64, 4), 64);
        let whole = all_dots(&m, &acts, false);
        let mut part = vec![f32::NAN; 2 * 16];
        m.dot_rows(17..33, &acts, &mut part);
        for t in 0..2 {
            assert_eq!(part[t * 16..(t + 1) * 16], whole[t * 40 + 17..t * 40 + 33]);
        }
    }
}
