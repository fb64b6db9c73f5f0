//! A plain line chart as an image, for model cards (loss curves). The live
//! charts in the app use egui_plot; this one needs no UI.

use image::{Rgb, RgbImage};

/// One line: its points (x = index) and colour.
pub struct Series<'a> {
    pub values: &'a [f64],
    pub colour: [u8; 3],
}

/// Draws `series` on a white `width × height` canvas with a light grid, all
/// sharing one y range (padded 5 %).
pub fn line_chart(series: &[Series], width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(width, height, Rgb([255; 3]));
    let finite = series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return img;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let margin = 4.0;
    let (w, h) = (f64::from(width) - 2.0 * margin, f64::from(height) - 2.0 * margin);
    for i in 1..4 {
        let y = (margin + h * f64::from(i) / 4.0) as u32;
        for x in 0..width {
            img.put_pixel(x, y, Rgb([225; 3]));
        }
    }
    for s in series {
        let n = s.values.len();
        let point = |i: usize, v: f64| {
            let x = margin + if n > 1 { w * i as f64 / (n - 1) as f64 } else { w / 2.0 };
            (x, margin + h * (hi - v) / (hi - lo))
        };
        for i in 1..n.max(1) {
            let (a, b) = (point(i - 1, s.values[i - 1]), point(i, s.values[i]));
            let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
            for k in 0..=steps {
                let t = k as f64 / steps as f64;
                let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
                    let (px, py) = (x as u32 + dx, y as u32 + dy);
                    if px < width && py < height {
                        img.put_pixel(px, py, Rgb(s.colour));
                    }
                }
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_line_goes_from_bottom_left_to_top_right() {
        let img = line_chart(&[Series { values: &[0.0, 1.0], colour: [255, 0, 0] }], 100, 50);
        let red = |x: u32, y: u32| img.get_pixel(x, y).0 == [255, 0, 0];
        assert!((40..50).any(|y| red(4, y)), "starts low on the left");
        assert!((0..10).any(|y| red(96, y)), "ends high on the right");
    }
}
