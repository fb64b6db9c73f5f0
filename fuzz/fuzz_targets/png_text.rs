//! A PNG's text chunks, then the settings read from them (our JSON chunk or
//! A1111's `parameters`), as "Open image…", a dropped file and `info` do.
#![no_main]

use latent_studio::io::image_record::image_record_from_chunks;
use latent_studio::io::png_meta::{ImageSettings, SETTINGS_KEY, png_text_chunks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(chunks) = png_text_chunks(data) else { return };
    let _ = image_record_from_chunks(&chunks);
    if let Some((_, json)) = chunks.iter().find(|(k, _)| k == SETTINGS_KEY) {
        let _ = serde_json::from_str::<ImageSettings>(json);
    }
});
