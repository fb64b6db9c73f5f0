//! AUTOMATIC1111's `parameters` text, as pasted or read from another tool's PNG.
#![no_main]

use latent_studio::io::image_record::ImageRecord;
use latent_studio::io::sd_params::GenerationParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(params) = GenerationParams::parse_a1111(text) {
        let record = ImageRecord::from_params(&params);
        // What we write back must parse again.
        let again = GenerationParams::parse_a1111(&record.to_params().to_a1111());
        assert!(again.is_ok(), "{again:?}");
    }
});
