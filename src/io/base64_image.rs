//! Images carried as base64 text in JSON, as the A1111 API carries them
//! (`images`, `init_images`, `current_image`): PNG out; any format the
//! `image` crate reads in, optionally as a `data:` URL, with its PNG text
//! chunks. Decoding refuses what a header claims is larger than
//! [`MAX_SIDE`] before allocating it, so a hostile server or client cannot
//! send a decompression bomb.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::RgbImage;

use super::error::EncodeError;
use super::png_meta::{encode_png, text_chunks};

/// Largest side of an image read from base64.
pub const MAX_SIDE: u32 = 4096;

/// `image` as a base64 PNG with `chunks` as its text chunks.
pub fn encode_base64_png(image: &RgbImage, chunks: &[(String, String)]) -> Result<String, EncodeError> {
    Ok(STANDARD.encode(encode_png(image, chunks)?))
}

/// A base64 image as RGB, with its PNG text chunks (none for other formats).
pub fn decode_base64_image(b64: &str) -> Result<(RgbImage, Vec<(String, String)>), String> {
    let b64 = b64.split_once(";base64,").map_or(b64, |(_, data)| data);
    let bytes = STANDARD.decode(b64.trim()).map_err(|e| format!("not base64: {e}"))?;
    let mut reader = image::ImageReader::new(Cursor::new(&bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| format!("an unreadable image: {e}"))?.to_rgb8();
    Ok((image, text_chunks(&bytes).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_data_urls_and_the_size_limit() {
        let chunks = vec![("parameters".to_owned(), "a cat".to_owned())];
        let b64 = encode_base64_png(&RgbImage::new(8, 4), &chunks).unwrap();
        let (image, read) = decode_base64_image(&format!("data:image/png;base64,{b64}")).unwrap();
        assert_eq!((image.dimensions(), read), ((8, 4), chunks));
        let big = encode_base64_png(&RgbImage::new(MAX_SIDE + 1, 1), &[]).unwrap();
        assert!(decode_base64_image(&big).is_err());
        assert!(decode_base64_image("not base64!").unwrap_err().contains("not base64"));
    }
}
