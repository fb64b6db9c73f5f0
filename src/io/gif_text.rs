//! Animated GIFs that carry the settings that made them. GIF has no text
//! chunks, so each (key, value) pair is a comment extension holding
//! `key NUL value`, the layout of PNG's tEXt chunk; viewers ignore comments,
//! and comments in other layouts (another tool's) are skipped when read.

use image::RgbImage;

use super::error::{EncodeError, FormatError};

/// Encodes `frames` (all the same size) as a looping animated GIF with
/// `delay_ms` per frame and `chunks` as comments.
pub fn encode_gif(frames: &[RgbImage], delay_ms: u32, chunks: &[(String, String)]) -> Result<Vec<u8>, EncodeError> {
    let err = |e| EncodeError::new("GIF", e);
    let Some(first) = frames.first() else { return Err(err("no frames".into())) };
    if frames.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(err("frames differ in size".into()));
    }
    let side = |v: u32| u16::try_from(v).map_err(|_| err(format!("{v} pixels is wider than GIF allows (65535)")));
    let (width, height) = (side(first.width())?, side(first.height())?);
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, width, height, &[]).map_err(|e| err(e.to_string()))?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(|e| err(e.to_string()))?;
        for (key, value) in chunks {
            let text = [key.as_bytes(), b"\0", value.as_bytes()].concat();
            enc.write_raw_extension(gif::Extension::Comment.into(), &[&text]).map_err(|e| err(e.to_string()))?;
        }
        // GIF counts delays in hundredths of a second.
        let delay = u16::try_from(delay_ms.div_ceil(10)).unwrap_or(u16::MAX);
        for image in frames {
            let mut frame = gif::Frame::from_rgb_speed(width, height, image.as_raw(), 10);
            frame.delay = delay;
            enc.write_frame(&frame).map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(out)
}

/// The `key NUL value` comments of a GIF file's bytes, in file order.
pub fn gif_text_chunks(bytes: &[u8]) -> Result<Vec<(String, String)>, FormatError> {
    let mut reader = Blocks { bytes, at: 0 };
    let signature = reader.take(6)?;
    if signature != b"GIF87a" && signature != b"GIF89a" {
        return Err(FormatError("not a GIF file".into()));
    }
    let screen = reader.take(7)?;
    reader.skip_color_table(screen[4])?;
    let mut chunks = Vec::new();
    loop {
        match reader.take(1)?[0] {
            0x21 => {
                let label = reader.take(1)?[0];
                let data = reader.sub_blocks(label == 0xFE)?;
                if let Some(split) = data.iter().position(|&b| b == 0) {
                    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    chunks.push((text(&data[..split]), text(&data[split + 1..])));
                }
            }
            0x2C => {
                let descriptor = reader.take(9)?;
                reader.skip_color_table(descriptor[8])?;
                reader.take(1)?; // LZW minimum code size
                reader.sub_blocks(false)?;
            }
            0x3B => return Ok(chunks),
            other => return Err(FormatError(format!("unknown GIF block 0x{other:02x} at byte {}", reader.at - 1))),
        }
    }
}

/// A cursor over a GIF's bytes.
struct Blocks<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Blocks<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let slice = self.bytes.get(self.at..self.at + n).ok_or_else(|| FormatError("the GIF is cut short".into()))?;
        self.at += n;
        Ok(slice)
    }

    /// Skips the colour table a descriptor's packed byte announces.
    fn skip_color_table(&mut self, packed: u8) -> Result<(), FormatError> {
        if packed & 0x80 != 0 {
            self.take(3 << ((packed & 7) + 1))?;
        }
        Ok(())
    }

    /// Reads sub-blocks up to the terminator; their bytes if `keep`.
    fn sub_blocks(&mut self, keep: bool) -> Result<Vec<u8>, FormatError> {
        let mut data = Vec::new();
        loop {
            let len = usize::from(self.take(1)?[0]);
            if len == 0 {
                return Ok(data);
            }
            let block = self.take(len)?;
            if keep {
                data.extend_from_slice(block);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_round_trip_and_frames_decode() {
        let long = "x".repeat(700); // spans several 255-byte sub-blocks
        let chunks = vec![("latent-studio".to_owned(), format!("{{\"a\":\"{long}\"}}")), ("Model".into(), "é".into())];
        let frames = [RgbImage::from_pixel(3, 2, image::Rgb([200, 10, 10])), RgbImage::new(3, 2)];
        let bytes = encode_gif(&frames, 80, &chunks).unwrap();
        assert_eq!(gif_text_chunks(&bytes).unwrap(), chunks);
        let decoded = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes)).unwrap();
        let frames = image::AnimationDecoder::into_frames(decoded).collect_frames().unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].delay().numer_denom_ms(), (80, 1));
        assert_eq!(frames[0].buffer().get_pixel(0, 0).0, [200, 10, 10, 255]);
    }

    #[test]
    fn broken_gifs_are_errors() {
        let bytes = encode_gif(&[RgbImage::new(2, 2)], 50, &[("k".into(), "v".into())]).unwrap();
        for cut in [0, 5, 12, 20, bytes.len() - 1] {
            assert!(gif_text_chunks(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(gif_text_chunks(b"\x89PNG\r\n\x1a\n").is_err());
        assert!(encode_gif(&[], 50, &[]).is_err());
        assert!(encode_gif(&[RgbImage::new(2, 2), RgbImage::new(3, 2)], 50, &[]).is_err());
    }
}
