//! Composing several images into one: grids and strips as PNG, animations as GIF.

use image::{Delay, Frame, RgbImage, RgbaImage};

/// Lays `images` (all the same size) out in rows of `columns` with `pad` pixels between.
pub fn make_grid(images: &[RgbImage], columns: usize, pad: u32) -> RgbImage {
    let Some(first) = images.first() else {
        return RgbImage::new(1, 1);
    };
    let (w, h) = first.dimensions();
    let columns = columns.clamp(1, images.len());
    let rows = images.len().div_ceil(columns);
    let mut grid =
        RgbImage::from_pixel(columns as u32 * (w + pad) + pad, rows as u32 * (h + pad) + pad, image::Rgb([32, 32, 36]));
    for (i, img) in images.iter().enumerate() {
        let x = pad + (i % columns) as u32 * (w + pad);
        let y = pad + (i / columns) as u32 * (h + pad);
        image::imageops::replace(&mut grid, img, x as i64, y as i64);
    }
    grid
}

/// Scales `image` up by an integer factor with nearest-neighbour sampling, so
/// small model outputs stay crisp in saved files.
pub fn upscale(image: &RgbImage, factor: u32) -> RgbImage {
    let factor = factor.max(1);
    image::imageops::resize(
        image,
        image.width() * factor,
        image.height() * factor,
        image::imageops::FilterType::Nearest,
    )
}

/// Encodes `frames` as a looping animated GIF with `delay_ms` per frame.
pub fn encode_gif(frames: &[RgbImage], delay_ms: u32) -> Result<Vec<u8>, super::error::EncodeError> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
        let err = |e| super::error::EncodeError::new("GIF", e);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(err)?;
        let delay = Delay::from_numer_denom_ms(delay_ms, 1);
        let frames = frames.iter().map(|f| {
            let rgba: RgbaImage = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            Frame::from_parts(rgba, 0, 0, delay)
        });
        enc.encode_frames(frames).map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_image() {
        let a = RgbImage::from_pixel(2, 2, image::Rgb([255, 0, 0]));
        let b = RgbImage::from_pixel(2, 2, image::Rgb([0, 255, 0]));
        let g = make_grid(&[a, b.clone(), b], 2, 1);
        assert_eq!(g.dimensions(), (7, 7));
        assert_eq!(g.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(g.get_pixel(4, 1).0, [0, 255, 0]);
        assert_eq!(g.get_pixel(1, 4).0, [0, 255, 0]);
    }

    #[test]
    fn gif_has_every_frame() {
        use image::AnimationDecoder;
        let frames: Vec<RgbImage> = (0..4).map(|i| RgbImage::from_pixel(4, 4, image::Rgb([i * 60, 0, 0]))).collect();
        let bytes = encode_gif(&frames, 80).unwrap();
        let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(decoded.into_frames().count(), 4);
    }
}
