//! Folders of images as users have them, for the training-from-a-folder tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};

/// A colourful test image: a disc of one colour on another, `w × h`.
pub fn disc(w: u32, h: u32, seed: u32, alpha: bool) -> DynamicImage {
    let colour = |k: u32| ((seed * 67 + k * 101) % 256) as u8;
    let img = RgbaImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as f32 - w as f32 / 2.0, y as f32 - h as f32 / 2.0);
        let inside = dx * dx + dy * dy < (w.min(h) as f32 / 3.0).powi(2);
        if inside {
            Rgba([colour(1), colour(2), colour(3), 255])
        } else {
            Rgba([colour(4), colour(5), colour(6), if alpha { 0 } else { 255 }])
        }
    });
    DynamicImage::ImageRgba8(img)
}

/// A PNG whose header claims `side × side` pixels, with no pixel data.
pub fn huge_png_header(side: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
        out
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// 14 usable images in two classes and five files that are not.
pub fn mixed_folder(dir: &Path) {
    let (cats, dogs) = (dir.join("cats"), dir.join("dogs"));
    std::fs::create_dir_all(&cats).unwrap();
    std::fs::create_dir_all(&dogs).unwrap();
    for i in 0..4 {
        disc(40 + i, 30, i, true).save(cats.join(format!("alpha_{i}.png"))).unwrap();
        disc(50, 50 + 3 * i, i + 10, false).to_rgb8().save(cats.join(format!("photo_{i}.jpg"))).unwrap();
    }
    for i in 0..3 {
        disc(24, 24, i + 20, false).to_luma8().save(dogs.join(format!("grey_{i}.png"))).unwrap();
        disc(32, 20, i + 30, true).save_with_format(dogs.join(format!("web_{i}.webp")), ImageFormat::WebP).unwrap();
    }
    // An animated GIF: its first frame is used.
    let gif = std::fs::File::create(dir.join("anim.gif")).unwrap();
    let mut encoder = image::codecs::gif::GifEncoder::new(gif);
    let frames = (0..2).map(|i| image::Frame::new(disc(20, 20, 40 + i, false).to_rgba8()));
    encoder.encode_frames(frames).unwrap();
    drop(encoder);
    std::fs::write(dir.join("anim.txt"), "a bouncing ball").unwrap(); // a caption, not a skipped file
    std::fs::write(dir.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    std::fs::write(dir.join("old.bmp"), b"BM").unwrap();
    disc(4, 4, 1, false).save(dir.join("tiny.png")).unwrap();
    std::fs::write(dir.join("huge.png"), huge_png_header(20_000)).unwrap();
}
