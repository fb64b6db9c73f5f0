//! A1111's variation seed ("subseed"): the initial noise is the seed's
//! slerped towards the variation seed's by the strength.
//!
//! As A1111 defines it (`modules/rng.py`, `slerp`): for noise of shape
//! [c, h, w] the angle is measured per (channel, column), over the rows;
//! when the two noises are nearly parallel on average (mean cosine above
//! 0.9995) it falls back to a linear blend, with the weights the other way
//! round (`low·val + high·(1 − val)`). Both quirks are kept: the point is
//! to make the same picture from the same settings.

/// `strength` of the way from `low` (the seed's noise) to `high` (the
/// variation seed's), both [c, h, w] row-major. Computed in f64.
pub fn a1111_slerp(strength: f64, low: &[f32], high: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    assert_eq!(low.len(), c * h * w, "variation: noise shape");
    assert_eq!(high.len(), low.len(), "variation: noise shapes differ");
    let at = |ch: usize, y: usize, x: usize| (ch * h + y) * w + x;
    // Per (channel, column): |low|, |high| over the rows and the cosine between them.
    let mut columns = Vec::with_capacity(c * w);
    for ch in 0..c {
        for x in 0..w {
            let (mut ll, mut hh, mut lh) = (0f64, 0f64, 0f64);
            for y in 0..h {
                let (l, hi) = (f64::from(low[at(ch, y, x)]), f64::from(high[at(ch, y, x)]));
                (ll, hh, lh) = (ll + l * l, hh + hi * hi, lh + l * hi);
            }
            columns.push(lh / (ll.sqrt() * hh.sqrt()));
        }
    }
    let mut out = vec![0f32; low.len()];
    if columns.iter().sum::<f64>() / columns.len().max(1) as f64 > 0.9995 {
        for ((o, &l), &hi) in out.iter_mut().zip(low).zip(high) {
            *o = (f64::from(l) * strength + f64::from(hi) * (1.0 - strength)) as f32;
        }
        return out;
    }
    for ch in 0..c {
        for x in 0..w {
            let omega = columns[ch * w + x].clamp(-1.0, 1.0).acos();
            let so = omega.sin();
            let (a, b) = (((1.0 - strength) * omega).sin() / so, (strength * omega).sin() / so);
            for y in 0..h {
                let i = at(ch, y, x);
                out[i] = (a * f64::from(low[i]) + b * f64::from(high[i])) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::rng::SeededRng;

    #[test]
    fn strength_zero_and_one_give_the_two_noises() {
        let shape = [4, 5, 6];
        let (low, high) = (SeededRng::new(1).normal_vec(120), SeededRng::new(2).normal_vec(120));
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5);
        assert!(close(&a1111_slerp(0.0, &low, &high, shape), &low));
        assert!(close(&a1111_slerp(1.0, &low, &high, shape), &high));
        // Nearly the same noise: A1111's linear fallback, weights the other way round.
        let near: Vec<f32> = low.iter().map(|v| v * 1.0001).collect();
        let blended = a1111_slerp(0.25, &low, &near, shape);
        let expected: Vec<f32> = low.iter().zip(&near).map(|(l, n)| l * 0.25 + n * 0.75).collect();
        assert!(close(&blended, &expected));
    }
}
