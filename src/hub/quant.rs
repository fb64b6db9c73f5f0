//! The quantization a GGUF file's name announces (`…-Q4_K_M.gguf`,
//! `….Q8_0.gguf`, `…-q4_k_m.gguf`), read as the Hub's own pages read it:
//! the last known type label in the upper-cased name, with unsloth's `UD-`
//! prefix and a size suffix (`_XL`) kept.

use std::sync::OnceLock;

use regex::Regex;

/// The file types llama.cpp's quantizer writes, longest first within each
/// family so that `Q4_K_M` is not read as `Q4_K`.
const LABELS: &[&str] = &[
    "MXFP4_MOE",
    "BF16",
    "F32",
    "F16",
    "Q8_0",
    "Q8_1",
    "Q6_K",
    "Q5_K_M",
    "Q5_K_S",
    "Q5_K",
    "Q5_0",
    "Q5_1",
    "Q4_K_M",
    "Q4_K_S",
    "Q4_K",
    "Q4_0",
    "Q4_1",
    "IQ4_NL",
    "IQ4_XS",
    "Q3_K_XL",
    "Q3_K_L",
    "Q3_K_M",
    "Q3_K_S",
    "Q3_K",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_M",
    "IQ3_S",
    "Q2_K_XL",
    "Q2_K_L",
    "Q2_K_S",
    "Q2_K",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_M",
    "IQ2_S",
    "IQ1_M",
    "IQ1_S",
    "TQ1_0",
    "TQ2_0",
];

/// What most people pick, and what the Models view selects first.
pub const PREFERRED: &str = "Q4_K_M";

fn pattern() -> Option<&'static Regex> {
    static PATTERN: OnceLock<Option<Regex>> = OnceLock::new();
    PATTERN
        .get_or_init(|| {
            let labels = LABELS.join("|");
            // A label starts after a separator (or the name's start), and may
            // carry a size suffix such as `_XL` before the next separator.
            Regex::new(&format!(r"(?:^|[-_./ ])((?:UD-)?(?:{labels})(?:_[A-Z]+)?)(?:$|[-_./ ])")).ok()
        })
        .as_ref()
}

/// The quantization label of a GGUF file name, upper case; `None` if it names none.
pub fn quant_label(file_name: &str) -> Option<String> {
    let name = file_name.rsplit('/').next().unwrap_or(file_name).to_uppercase();
    let name = name.strip_suffix(".GGUF").unwrap_or(&name);
    // The last label wins: an org or model name may contain one earlier.
    let pattern = pattern()?;
    let mut last = None;
    let mut start = 0;
    while let Some(found) = pattern.captures_at(name, start) {
        let Some(label) = found.get(1) else { break };
        last = Some(label.as_str().to_owned());
        start = label.end();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_read_from_the_names_people_use() {
        let cases = [
            ("SmolLM2-135M-Instruct-Q4_K_M.gguf", Some("Q4_K_M")),
            ("smollm2-360m-instruct-q8_0.gguf", Some("Q8_0")),
            ("Meta-Llama-3.1-8B-Instruct.Q4_K_S.gguf", Some("Q4_K_S")),
            ("qwen2.5-0.5b-instruct-fp16.gguf", None),
            ("qwen2.5-0.5b-instruct-f16.gguf", Some("F16")),
            ("Llama-3.2-1B-Instruct-UD-Q4_K_XL.gguf", Some("UD-Q4_K_XL")),
            ("model-BF16.gguf", Some("BF16")),
            ("sub/dir/model-IQ3_XXS.gguf", Some("IQ3_XXS")),
            ("Q8_0-model-Q5_K_M.gguf", Some("Q5_K_M")),
            ("README.md", None),
            ("model.gguf", None),
        ];
        for (name, expected) in cases {
            assert_eq!(quant_label(name).as_deref(), expected, "{name}");
        }
    }
}
