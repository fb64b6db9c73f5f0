//! A model folder's two files: `manifest.json` (the first input line when it
//! starts with `{`) and the safetensors weights (the rest), read as the
//! model library and candle read them.
#![no_main]

use std::path::Path;

use candle_core::Device;
use latent_studio::io::manifest::parse_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (manifest, weights) = match data.iter().position(|&b| b == b'\n') {
        Some(i) if data.first() == Some(&b'{') => (&data[..i], &data[i + 1..]),
        _ => (&data[..0], data),
    };
    if let Ok(text) = std::str::from_utf8(manifest) {
        if let Ok(m) = parse_manifest(text, Path::new("model")) {
            let _ = (m.weights_path(), m.latent_map_path(), m.has_chat_template());
        }
    }
    if safetensors::SafeTensors::deserialize(weights).is_ok() {
        let _ = candle_core::safetensors::load_buffer(weights, &Device::Cpu);
    }
});
