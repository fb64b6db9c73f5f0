//! Composing several images into one: grids and strips as PNG, animations as
//! APNG (GIF: `io::gif_text`).

use image::RgbImage;

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

/// Encodes `frames` (all the same size) as a looping animated PNG with
/// `delay_ms` per frame and `chunks` as text (a viewer without APNG
/// support shows the first frame).
pub fn encode_apng(
    frames: &[RgbImage],
    delay_ms: u32,
    chunks: &[(String, String)],
) -> Result<Vec<u8>, super::error::EncodeError> {
    let err = |e| super::error::EncodeError::new("APNG", e);
    let Some(first) = frames.first() else { return Err(super::error::EncodeError::new("APNG", "no frames")) };
    if frames.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(super::error::EncodeError::new("APNG", "frames differ in size"));
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, first.width(), first.height());
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames.len() as u32, 0).map_err(err)?;
        enc.set_frame_delay(delay_ms.min(u32::from(u16::MAX)) as u16, 1000).map_err(err)?;
        for (k, v) in chunks {
            enc.add_itxt_chunk(k.clone(), v.clone()).map_err(err)?;
        }
        let mut writer = enc.write_header().map_err(err)?;
        for frame in frames {
            writer.write_image_data(frame.as_raw()).map_err(err)?;
        }
        writer.finish().map_err(err)?;
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
    fn apng_has_every_frame_and_the_text() {
        use image::AnimationDecoder;
        let frames: Vec<RgbImage> = (0..3).map(|i| RgbImage::from_pixel(4, 4, image::Rgb([0, i * 90, 0]))).collect();
        let chunks = [("latent-studio".to_owned(), "{}".to_owned())];
        let bytes = encode_apng(&frames, 100, &chunks).unwrap();
        let decoder = image::codecs::png::PngDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
        let decoded: Vec<_> = decoder.apng().unwrap().into_frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[2].buffer().get_pixel(1, 1).0, [0, 180, 0, 255]);
        assert_eq!(crate::io::png_meta::png_text_chunks(&bytes).unwrap(), chunks);
    }
}
