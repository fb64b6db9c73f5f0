//! NumPy `.npy` files given as `--noise` or dropped on the Image view.
#![no_main]

use latent_studio::io::npy::{npy_bytes, parse_npy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = parse_npy(data, "fuzz.npy") {
        // Whatever we read, we write back readably.
        let again = parse_npy(&npy_bytes(&array), "again.npy");
        assert_eq!(again.map(|a| a.shape).ok(), Some(array.shape));
    }
});
