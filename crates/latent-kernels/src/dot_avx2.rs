//! AVX2 versions of the `dot` kernels (x86-64 with AVX2, FMA and F16C, which
//! every x86 CPU since 2013–2015 has). Integer products per block come from
//! `maddubs` (u8 × i8 → i16 pairs) and `madd` (→ i32); each block's scale is
//! applied with one FMA into eight float lanes. Signed × signed products use
//! the sign trick: |w| × (x · sign w).

use std::arch::x86_64::*;
use std::ops::Range;

use super::dot::{ActRows, ROW_TILE, WeightRows, tiles};
use super::dot_avx2_q5k as q5k;
use super::format::{Q8_0_BYTES, Q8_1_BYTES, Q8_QUANTS_AT, WeightFormat};

/// Whether this CPU can run these kernels.
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// [`super::dot::dot_rows`] with these kernels.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_rows(w: WeightRows, rows: Range<usize>, acts: ActRows, out: &mut [f32]) {
    match w.format {
        WeightFormat::F32 => tiles(w, rows, acts, out, |a, b| dot_f32(a, b)),
        WeightFormat::Q4_0 => tiles(w, rows, acts, out, |a, b| dot_q4_0_q8_0(a, b)),
        WeightFormat::Q4_1 => {
            tiles_by_four(w, rows, acts, out, |a, b| [dot_q4_1_q8_1(a, b[0])], |a, b| dot_q4_1_q8_1_x4(a, b))
        }
        WeightFormat::Q8_0 => tiles(w, rows, acts, out, |a, b| dot_q8_0_q8_0(a, b)),
        WeightFormat::Q5_0 if vnni() => tiles_by(
            w,
            rows,
            acts,
            out,
            |a, b| q5k::dot_q5_0_q8_0::<1, true>(a, b),
            |a, b| q5k::dot_q5_0_q8_0::<8, true>(a, b),
        ),
        WeightFormat::Q5_0 => tiles_by(
            w,
            rows,
            acts,
            out,
            |a, b| q5k::dot_q5_0_q8_0::<1, false>(a, b),
            |a, b| q5k::dot_q5_0_q8_0::<8, false>(a, b),
        ),
        WeightFormat::Q5_1 => {
            tiles_by_four(w, rows, acts, out, |a, b| q5k::dot_q5_1_q8_1(a, b), |a, b| q5k::dot_q5_1_q8_1(a, b))
        }
        WeightFormat::Q4K => tiles_by_four(
            w,
            rows,
            acts,
            out,
            |a, b| q5k::dot_q45k_q8k(a, b, false),
            |a, b| q5k::dot_q45k_q8k(a, b, false),
        ),
        WeightFormat::Q5K => tiles_by_four(
            w,
            rows,
            acts,
            out,
            |a, b| q5k::dot_q45k_q8k(a, b, true),
            |a, b| q5k::dot_q45k_q8k(a, b, true),
        ),
        WeightFormat::Q6K => {
            tiles_by_four(w, rows, acts, out, |a, b| q5k::dot_q6k_q8k(a, b), |a, b| q5k::dot_q6k_q8k(a, b))
        }
    }
}

/// [`tiles_by`] four tokens at a time.
#[inline(always)]
fn tiles_by_four(
    w: WeightRows,
    rows: Range<usize>,
    acts: ActRows,
    out: &mut [f32],
    one: impl Fn(&[u8], [&[u8]; 1]) -> [f32; 1],
    four: impl Fn(&[u8], [&[u8]; 4]) -> [f32; 4],
) {
    tiles_by(w, rows, acts, out, one, four);
}

/// Rows against `N` tokens at a time (`many`): each weight block is
/// unpacked once for the `N` (prompt processing); leftover tokens go one
/// by one (`one`), with the same arithmetic per token.
#[inline(always)]
fn tiles_by<const N: usize>(
    w: WeightRows,
    rows: Range<usize>,
    acts: ActRows,
    out: &mut [f32],
    one: impl Fn(&[u8], [&[u8]; 1]) -> [f32; 1],
    many: impl Fn(&[u8], [&[u8]; N]) -> [f32; N],
) {
    let width = rows.len();
    assert!(out.len() >= acts.tokens * width, "output too short for {} tokens × {width} rows", acts.tokens);
    let act = |t: usize| &acts.data[t * acts.row_bytes..(t + 1) * acts.row_bytes];
    let groups = acts.tokens / N;
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + ROW_TILE).min(rows.end);
        for group in 0..groups {
            let t = N * group;
            let xs: [&[u8]; N] = std::array::from_fn(|k| act(t + k));
            for r in start..end {
                let sums = many(&w.data[r * w.row_bytes..(r + 1) * w.row_bytes], xs);
                for (k, v) in sums.into_iter().enumerate() {
                    out[(t + k) * width + r - rows.start] = v;
                }
            }
        }
        for t in N * groups..acts.tokens {
            for r in start..end {
                out[t * width + r - rows.start] = one(&w.data[r * w.row_bytes..(r + 1) * w.row_bytes], [act(t)])[0];
            }
        }
        start = end;
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_1_q8_1_x4(w: &[u8], x: [&[u8]; 4]) -> [f32; 4] {
    let n = x.iter().fold(w.len() / 20, |n, x| n.min(x.len() / Q8_1_BYTES));
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut offsets = [_mm_setzero_ps(); 4];
    for i in 0..n {
        // SAFETY: block i spans w[20i..20i+20] and x[k][40i..40i+40], inside every slice.
        unsafe {
            let wb = w.as_ptr().add(20 * i);
            let wq = unpack_nibbles(_mm_loadu_si128(wb.add(4).cast()));
            // [d_w, m_w]
            let wh = _mm_cvtph_ps(_mm_cvtsi32_si128(wb.cast::<i32>().read_unaligned()));
            for k in 0..4 {
                let xb = x[k].as_ptr().add(Q8_1_BYTES * i);
                // [d_w·d_x, m_w·s_x]
                let scales = _mm_mul_ps(wh, two_floats(xb));
                offsets[k] = _mm_add_ps(offsets[k], scales);
                let xq = _mm256_loadu_si256(xb.add(8).cast());
                let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), p, acc[k]);
            }
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + _mm_cvtss_f32(_mm_shuffle_ps(offsets[k], offsets[k], 1)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The 32 nibbles of a Q4 block as bytes: low nibbles (elements 0..16) in the
/// lower lane, high nibbles (16..32) in the upper one.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn unpack_nibbles(qs: __m128i) -> __m256i {
    let mask = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), mask), _mm_and_si128(qs, mask))
}

/// Σ w·x over 32 signed bytes, as eight i32 lanes turned float.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn signed_products(w: __m256i, x: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(byte_sums::<false>(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)))
}

/// Whether this CPU has AVX-512 VNNI for 256-bit vectors (`vpdpbusd`).
pub(super) fn vnni() -> bool {
    is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
}

/// The sums of each four adjacent products of unsigned bytes `u` and signed
/// bytes `s`, as eight i32 lanes: one `vpdpbusd` with VNNI (callers check
/// [`vnni`]), else `maddubs` and `madd`. Both give the same sums: with
/// activations within ±127 and weights below 128, no pair overflows `maddubs`'s
/// i16. Inline assembly, so that one kernel body serves both instruction sets.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn byte_sums<const VNNI: bool>(u: __m256i, s: __m256i) -> __m256i {
    byte_sums_onto::<VNNI>(_mm256_setzero_si256(), u, s)
}

/// `start` plus [`byte_sums`] of `u` and `s`, lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn byte_sums_onto<const VNNI: bool>(start: __m256i, u: __m256i, s: __m256i) -> __m256i {
    if VNNI {
        let mut sums = start;
        // SAFETY: registers only; VNNI is true only where `vnni()` found the instruction.
        unsafe {
            std::arch::asm!(
                "vpdpbusd {sums}, {u}, {s}",
                sums = inout(ymm_reg) sums,
                u = in(ymm_reg) u,
                s = in(ymm_reg) s,
                options(pure, nomem, nostack),
            );
        }
        sums
    } else {
        _mm256_add_epi32(start, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }
}

/// A weight block's f16 scale at `w` times an activation block's f32 scale
/// at `x`, in lane 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn scale_product(w: *const u8, x: *const u8) -> __m128 {
    // SAFETY: callers pass pointers to the first byte of a block header.
    let (w, x) = unsafe { (w.cast::<u16>().read_unaligned(), x.cast::<f32>().read_unaligned()) };
    _mm_mul_ss(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(w))), _mm_set_ss(x))
}

/// The two f32s at `p` (a Q8_1 activation block's `d` and `s`) in lanes 0 and 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn two_floats(p: *const u8) -> __m128 {
    // SAFETY: callers pass a pointer to a Q8_1 activation block's first byte.
    let bits = unsafe { p.cast::<i64>().read_unaligned() };
    _mm_castsi128_ps(_mm_cvtsi64_si128(bits))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32(w: &[u8], x: &[u8]) -> f32 {
    let n = w.len().min(x.len()) / 4;
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY: every load reads 8 floats that end at or before n.
    unsafe {
        let (wp, xp) = (w.as_ptr().cast::<f32>(), x.as_ptr().cast::<f32>());
        while i + 16 <= n {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i)), _mm256_loadu_ps(xp.add(i)), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i + 8)), _mm256_loadu_ps(xp.add(i + 8)), a1);
            i += 16;
        }
        while i + 8 <= n {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i)), _mm256_loadu_ps(xp.add(i)), a0);
            i += 8;
        }
    }
    let mut sum = hsum(_mm256_add_ps(a0, a1));
    for j in i..n {
        let at = 4 * j;
        sum += f32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]])
            * f32::from_le_bytes([x[at], x[at + 1], x[at + 2], x[at + 3]]);
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 18).min(x.len() / Q8_0_BYTES);
    let mut acc = _mm256_setzero_ps();
    for i in 0..n {
        // SAFETY: block i spans w[18i..18i+18] and x[36i..36i+36], inside both slices.
        unsafe {
            let (wb, xb) = (w.as_ptr().add(18 * i), x.as_ptr().add(Q8_0_BYTES * i));
            let d = scale_product(wb, xb);
            let wq = _mm256_sub_epi8(unpack_nibbles(_mm_loadu_si128(wb.add(2).cast())), _mm256_set1_epi8(8));
            let xq = _mm256_loadu_si256(xb.add(Q8_QUANTS_AT).cast());
            acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), signed_products(wq, xq), acc);
        }
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q4_1_q8_1(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 20).min(x.len() / Q8_1_BYTES);
    let ones = _mm256_set1_epi16(1);
    let (mut acc, mut offsets) = (_mm256_setzero_ps(), _mm_setzero_ps());
    for i in 0..n {
        // SAFETY: block i spans w[20i..20i+20] and x[40i..40i+40], inside both slices.
        unsafe {
            let (wb, xb) = (w.as_ptr().add(20 * i), x.as_ptr().add(Q8_1_BYTES * i));
            // [d_w, m_w] · [d_x, s_x] → [d_w·d_x, m_w·s_x].
            let wh = _mm_cvtph_ps(_mm_cvtsi32_si128(wb.cast::<i32>().read_unaligned()));
            let scales = _mm_mul_ps(wh, two_floats(xb));
            offsets = _mm_add_ps(offsets, scales);
            let wq = unpack_nibbles(_mm_loadu_si128(wb.add(4).cast()));
            let xq = _mm256_loadu_si256(xb.add(8).cast());
            // Nibbles are unsigned, so maddubs takes them as they are.
            let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones));
            acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(scales), p, acc);
        }
    }
    hsum(acc) + _mm_cvtss_f32(_mm_shuffle_ps(offsets, offsets, 1))
}

#[target_feature(enable = "avx2,fma,f16c")]
fn dot_q8_0_q8_0(w: &[u8], x: &[u8]) -> f32 {
    let n = (w.len() / 34).min(x.len() / Q8_0_BYTES);
    let mut acc = _mm256_setzero_ps();
    for i in 0..n {
        // SAFETY: block i spans w[34i..34i+34] and x[36i..36i+36], inside both slices.
        unsafe {
            let (wb, xb) = (w.as_ptr().add(34 * i), x.as_ptr().add(Q8_0_BYTES * i));
            let d = scale_product(wb, xb);
            let wq = _mm256_loadu_si256(wb.add(2).cast());
            let xq = _mm256_loadu_si256(xb.add(Q8_QUANTS_AT).cast());
            acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), signed_products(wq, xq), acc);
        }
    }
    hsum(acc)
}
