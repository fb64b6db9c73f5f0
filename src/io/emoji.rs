//! The Noto emoji set as training images: the 64×64 RGBA PNGs of the npm
//! package emoji-datasource-google, laid on white and averaged down to a
//! smaller square, with each emoji's category as its label.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::datasets::{DatasetError, ImageSet, Split, read_file};

/// Categories in `emoji.json`, index = label.
pub const CATEGORIES: [&str; 10] = [
    "Smileys & Emotion",
    "People & Body",
    "Component",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
];

/// Side of the PNGs in the package.
const SOURCE_SIDE: usize = 64;

#[derive(Deserialize)]
struct Entry {
    image: String,
    category: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    short_names: Vec<String>,
    #[serde(default)]
    subcategory: Option<String>,
    #[serde(default)]
    has_img_google: bool,
    #[serde(default)]
    skin_variations: BTreeMap<String, Variation>,
}

#[derive(Deserialize)]
struct Variation {
    image: String,
    #[serde(default)]
    has_img_google: bool,
}

/// Loads every Google image listed in `dir/emoji.json` (skin-tone variants
/// included) from `dir/64/`, at `side × side` (a divisor of 64). Every tenth
/// image is held out.
pub fn load_emoji(dir: &Path, side: usize) -> Result<Split, DatasetError> {
    load_emoji_with_captions(dir, side).map(|(split, _)| split)
}

/// Text for each image of a split, in order (training, then held out).
pub struct Captions {
    pub train: Vec<String>,
    pub test: Vec<String>,
}

/// Words for the skin-tone modifiers in the variants' keys.
fn skin_tone(code: &str) -> Option<&'static str> {
    Some(match code {
        "1F3FB" => "light skin tone",
        "1F3FC" => "medium-light skin tone",
        "1F3FD" => "medium skin tone",
        "1F3FE" => "medium-dark skin tone",
        "1F3FF" => "dark skin tone",
        _ => return None,
    })
}

/// An emoji's caption for text conditioning: its name, short names and
/// subcategory in plain words ("grinning face, grinning, face smiling"),
/// plus the skin tones of a variant.
fn caption(entry: &Entry, variant: Option<&str>) -> String {
    let plain = |s: &str| s.replace(['-', '_'], " ").to_lowercase();
    let mut parts: Vec<String> = Vec::new();
    for part in entry.name.iter().chain(&entry.short_names).chain(&entry.subcategory).map(|s| plain(s)) {
        if !part.is_empty() && !parts.contains(&part) {
            parts.push(part);
        }
    }
    if let Some(key) = variant {
        let tones: Vec<&str> = key.split('-').filter_map(skin_tone).collect();
        if !tones.is_empty() {
            parts.push(tones.join(" and "));
        }
    }
    parts.join(", ")
}

/// [`load_emoji`] with each image's caption.
pub fn load_emoji_with_captions(dir: &Path, side: usize) -> Result<(Split, Captions), DatasetError> {
    let list = dir.join("emoji.json");
    let entries: Vec<Entry> = serde_json::from_slice(&read_file(&list)?).map_err(|e| DatasetError::Format {
        path: list.clone(),
        what: "emoji list",
        detail: e.to_string(),
    })?;
    let new_set = || ImageSet { side, channels: 3, ..Default::default() };
    let (mut train, mut test) = (new_set(), new_set());
    let mut captions = Captions { train: Vec::new(), test: Vec::new() };
    let mut count = 0;
    for entry in &entries {
        let label = CATEGORIES.iter().position(|c| *c == entry.category).unwrap_or(CATEGORIES.len() - 1) as u8;
        let images = std::iter::once((entry.has_img_google, &entry.image, None))
            .chain(entry.skin_variations.iter().map(|(key, v)| (v.has_img_google, &v.image, Some(key.as_str()))));
        for (present, name, variant) in images {
            if !present {
                continue;
            }
            let path = dir.join("64").join(name);
            let pixels = read_emoji(&path, side)?;
            let (set, texts) =
                if count % 10 == 9 { (&mut test, &mut captions.test) } else { (&mut train, &mut captions.train) };
            set.pixels.extend_from_slice(&pixels);
            set.labels.push(label);
            texts.push(caption(entry, variant));
            count += 1;
        }
    }
    if count == 0 {
        return Err(DatasetError::Format { path: list, what: "emoji list", detail: "it lists no images".into() });
    }
    Ok((Split { train, test }, captions))
}

/// One emoji as `[3, side, side]` values in [0, 1], composited on white.
fn read_emoji(path: &Path, side: usize) -> Result<Vec<f32>, DatasetError> {
    let bad = |detail: String| DatasetError::Format { path: path.to_owned(), what: "64×64 emoji PNG", detail };
    if side == 0 || !SOURCE_SIDE.is_multiple_of(side) {
        return Err(bad(format!("{side} does not divide {SOURCE_SIDE}")));
    }
    let img = image::load_from_memory(&read_file(path)?).map_err(|e| bad(e.to_string()))?.to_rgba32f();
    if img.dimensions() != (SOURCE_SIDE as u32, SOURCE_SIDE as u32) {
        return Err(bad(format!("the image is {}×{}", img.width(), img.height())));
    }
    let factor = SOURCE_SIDE / side;
    let mut out = vec![0f32; 3 * side * side];
    for (x, y, px) in img.enumerate_pixels() {
        let [r, g, b, a] = px.0;
        let at = (y as usize / factor) * side + x as usize / factor;
        for (c, v) in [r, g, b].into_iter().enumerate() {
            out[c * side * side + at] += a * v + (1.0 - a);
        }
    }
    let scale = 1.0 / (factor * factor) as f32;
    out.iter_mut().for_each(|v| *v = (*v * scale).clamp(0.0, 1.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_pixels_become_white_and_blocks_are_averaged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("64")).unwrap();
        // Left half opaque red, right half fully transparent black.
        let img = image::RgbaImage::from_fn(
            64,
            64,
            |x, _| if x < 32 { [255, 0, 0, 255].into() } else { [0, 0, 0, 0].into() },
        );
        img.save(dir.path().join("64/a.png")).unwrap();
        let list = r#"[{"image":"a.png","category":"Symbols","has_img_google":true,
            "skin_variations":{"1F3FB":{"image":"a.png","has_img_google":true}}},
            {"image":"missing.png","category":"Flags","has_img_google":false}]"#;
        std::fs::write(dir.path().join("emoji.json"), list).unwrap();
        let split = load_emoji(dir.path(), 2).unwrap();
        assert_eq!((split.train.len(), split.test.len()), (2, 0));
        assert_eq!(split.train.labels, vec![8, 8]);
        // [3, 2, 2]: red plane 1 everywhere; green and blue 0 on the left, 1 on the right.
        assert_eq!(split.train.image(0), &[1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn captions_read_like_words() {
        let list = r#"[{"image":"a.png","category":"People & Body","has_img_google":true,
            "name":"FATHER CHRISTMAS","short_names":["santa"],"subcategory":"person-fantasy",
            "skin_variations":{"1F3FB":{"image":"a.png","has_img_google":true},
                               "1F3FE-1F3FF":{"image":"a.png","has_img_google":true}}}]"#;
        let entries: Vec<Entry> = serde_json::from_str(list).unwrap();
        assert_eq!(caption(&entries[0], None), "father christmas, santa, person fantasy");
        assert_eq!(caption(&entries[0], Some("1F3FB")), "father christmas, santa, person fantasy, light skin tone");
        assert_eq!(
            caption(&entries[0], Some("1F3FE-1F3FF")),
            "father christmas, santa, person fantasy, medium-dark skin tone and dark skin tone"
        );
    }

    #[test]
    fn a_broken_png_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("64")).unwrap();
        std::fs::write(dir.path().join("64/a.png"), b"not a png").unwrap();
        std::fs::write(
            dir.path().join("emoji.json"),
            r#"[{"image":"a.png","category":"Objects","has_img_google":true}]"#,
        )
        .unwrap();
        let err = load_emoji(dir.path(), 32).err().unwrap().to_string();
        assert!(err.contains("64/a.png"), "{err}");
    }
}
