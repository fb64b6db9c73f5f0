//! The user's own folder as a training set: every PNG, JPEG, WebP and GIF
//! (its first frame) below it, of any size, colour type and alpha, laid on
//! white, made grey or kept in colour, and fitted to a square side by
//! centre crop, padding or stretching; horizontal flips optionally added.
//! Every tenth image is held out. First-level subfolders are the classes.
//! A file that cannot be used is listed with the reason, never fatal;
//! decoding is bounded, so one huge or hostile image cannot exhaust memory.

use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageReader, Limits, Rgba, RgbaImage};
use serde::{Deserialize, Serialize};

use super::datasets::{DatasetError, ImageSet, Split};

/// The extensions read as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif"];
/// Files beside the images that are not training data (captions, metadata).
const COMPANION_EXTENSIONS: &[&str] = &["txt", "caption", "json", "toml", "md"];
/// Decoding limits: larger images are refused before their pixels are allocated.
const MAX_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 512 << 20;
/// How deep subfolders are searched.
const MAX_DEPTH: usize = 4;

/// How an image of another shape becomes a square.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// The centred square, scaled.
    Crop,
    /// The whole image, scaled to fit, the rest filled with its corner colour.
    Pad,
    /// The whole image, scaled to the square (its proportions change).
    Stretch,
}

impl Fit {
    pub fn name(self) -> &'static str {
        match self {
            Fit::Crop => "centre crop",
            Fit::Pad => "pad",
            Fit::Stretch => "stretch",
        }
    }
}

/// A folder and how its images are prepared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FolderSpec {
    pub folder: PathBuf,
    /// Side of the square images the model sees (a multiple of 4, 8–256).
    pub side: usize,
    /// 1 (grey) or 3 (colour).
    pub channels: usize,
    pub fit: Fit,
    /// Add each training image mirrored left to right.
    pub flip: bool,
}

impl FolderSpec {
    /// Why these settings cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(8..=256).contains(&self.side) || !self.side.is_multiple_of(4) {
            return Err(format!(
                "side {} is not a multiple of 4 from 8 to 256 (28, 32, 48 and 64 are usual)",
                self.side
            ));
        }
        if !matches!(self.channels, 1 | 3) {
            return Err(format!("channels {} is neither 1 (grey) nor 3 (colour)", self.channels));
        }
        Ok(())
    }
}

/// A file left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// A folder read as a data set.
#[derive(Clone, Debug)]
pub struct FolderData {
    /// Training images (flipped copies after the originals), held-out images.
    pub train: ImageSet,
    pub test: ImageSet,
    /// The files behind `train` (originals only) and `test`, in order.
    pub train_files: Vec<PathBuf>,
    pub test_files: Vec<PathBuf>,
    /// First-level subfolders (label = index); `["images"]` when there are none.
    pub classes: Vec<String>,
    pub skipped: Vec<Skipped>,
}

impl FolderData {
    pub fn split(&self) -> Split {
        Split { train: self.train.clone(), test: self.test.clone() }
    }
}

/// Reads `spec.folder`.
pub fn load_folder(spec: &FolderSpec) -> Result<FolderData, DatasetError> {
    spec.check().map_err(|detail| DatasetError::Format {
        path: spec.folder.clone(),
        what: "training setting",
        detail,
    })?;
    let folder = &spec.folder;
    if !folder.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder");
        return Err(DatasetError::Io { path: folder.clone(), source });
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    walk(folder, MAX_DEPTH, &mut files, &mut skipped);
    let classes = folder_classes(folder);
    let mut images: Vec<(PathBuf, u8, Vec<f32>)> = Vec::with_capacity(files.len());
    for path in files {
        match prepare_file(&path, spec) {
            Ok(pixels) => {
                let label = class_of(folder, &path, &classes);
                images.push((path, label, pixels));
            }
            Err(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    if images.len() < 2 {
        let found = if images.is_empty() { "no usable images".to_owned() } else { "only one usable image".to_owned() };
        let detail = format!(
            "{found} (looked for {} below it; {} files skipped); a data set needs at least 2",
            IMAGE_EXTENSIONS.join(", "),
            skipped.len()
        );
        return Err(DatasetError::Format { path: folder.clone(), what: "image folder", detail });
    }
    let empty = || ImageSet { side: spec.side, channels: spec.channels, ..ImageSet::default() };
    let (mut train, mut test) = (empty(), empty());
    let (mut train_files, mut test_files) = (Vec::new(), Vec::new());
    for (i, (path, label, pixels)) in images.into_iter().enumerate() {
        let (set, names) = if i % 10 == 9 { (&mut test, &mut test_files) } else { (&mut train, &mut train_files) };
        set.pixels.extend_from_slice(&pixels);
        set.labels.push(label);
        names.push(path);
    }
    if spec.flip {
        let n = train.len();
        for i in 0..n {
            let flipped = flip_horizontal(train.image(i), spec.channels, spec.side);
            train.pixels.extend_from_slice(&flipped);
            train.labels.push(train.labels[i]);
        }
    }
    Ok(FolderData { train, test, train_files, test_files, classes, skipped })
}

/// Image files below `dir` (sorted, hidden files left out); other files go to `skipped`.
fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, skipped: &mut Vec<Skipped>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        skipped.push(Skipped { path: dir.to_owned(), reason: "the folder cannot be read".into() });
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if depth > 0 {
                walk(&path, depth - 1, files, skipped);
            }
            continue;
        }
        let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if IMAGE_EXTENSIONS.contains(&extension.as_str()) {
            files.push(path);
        } else if !COMPANION_EXTENSIONS.contains(&extension.as_str()) {
            let reason = format!("not an image ({})", if extension.is_empty() { "no extension" } else { &extension });
            skipped.push(Skipped { path, reason });
        }
    }
}

/// The classes of a folder: its first-level subfolders (sorted, at most
/// 255), or one class `images` when it has none.
pub fn folder_classes(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names.truncate(255);
    if names.is_empty() { vec!["images".into()] } else { names }
}

fn class_of(folder: &Path, path: &Path, classes: &[String]) -> u8 {
    let first = path
        .strip_prefix(folder)
        .ok()
        .filter(|rel| rel.components().count() > 1)
        .and_then(|rel| rel.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    first.and_then(|name| classes.iter().position(|c| *c == name)).map_or(0, |i| i as u8)
}

/// One file as the model sees it: `[channels, side, side]` in [0, 1].
pub fn prepare_file(path: &Path, spec: &FolderSpec) -> Result<Vec<f32>, String> {
    let reader = ImageReader::open(path).map_err(|e| format!("unreadable: {e}"))?;
    let reader = reader.with_guessed_format().map_err(|e| format!("unreadable: {e}"))?;
    decode_and_fit(reader, spec)
}

/// [`prepare_file`] for bytes already in memory (the fuzz target).
pub fn prepare_bytes(bytes: &[u8], spec: &FolderSpec) -> Result<Vec<f32>, String> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes));
    let reader = reader.with_guessed_format().map_err(|e| format!("unreadable: {e}"))?;
    decode_and_fit(reader, spec)
}

fn decode_and_fit<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
    spec: &FolderSpec,
) -> Result<Vec<f32>, String> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => {
            format!("too large to read safely (more than {MAX_SIDE} pixels a side or {} MB)", MAX_DECODE_BYTES >> 20)
        }
        other => format!("unreadable: {other}"),
    })?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    if w.min(h) * 2 < spec.side {
        return Err(format!("too small: {w}×{h} for a side of {} (at most 2× enlargement)", spec.side));
    }
    Ok(fit(&image, spec))
}

/// Lays the image on white, fits it to the square and converts it to `[c, s, s]`.
fn fit(image: &DynamicImage, spec: &FolderSpec) -> Vec<f32> {
    let mut rgba = image.to_rgba8();
    for pixel in rgba.pixels_mut() {
        let a = f32::from(pixel[3]) / 255.0;
        for c in 0..3 {
            pixel[c] = (f32::from(pixel[c]) * a + 255.0 * (1.0 - a)).round() as u8;
        }
        pixel[3] = 255;
    }
    let side = spec.side as u32;
    let (w, h) = rgba.dimensions();
    let square = match spec.fit {
        Fit::Stretch => imageops::resize(&rgba, side, side, FilterType::Triangle),
        Fit::Crop => {
            let s = w.min(h);
            let cropped = imageops::crop_imm(&rgba, (w - s) / 2, (h - s) / 2, s, s).to_image();
            imageops::resize(&cropped, side, side, FilterType::Triangle)
        }
        Fit::Pad => {
            let scale = side as f32 / w.max(h) as f32;
            let (nw, nh) = (
                ((w as f32 * scale).round() as u32).clamp(1, side),
                ((h as f32 * scale).round() as u32).clamp(1, side),
            );
            let scaled = imageops::resize(&rgba, nw, nh, FilterType::Triangle);
            let corner = *rgba.get_pixel(0, 0);
            let mut canvas = RgbaImage::from_pixel(side, side, Rgba([corner[0], corner[1], corner[2], 255]));
            imageops::overlay(&mut canvas, &scaled, i64::from((side - nw) / 2), i64::from((side - nh) / 2));
            canvas
        }
    };
    let s = spec.side;
    let mut out = vec![0f32; spec.channels * s * s];
    for (x, y, pixel) in square.enumerate_pixels() {
        let at = y as usize * s + x as usize;
        if spec.channels == 1 {
            let luma = 0.299 * f32::from(pixel[0]) + 0.587 * f32::from(pixel[1]) + 0.114 * f32::from(pixel[2]);
            out[at] = luma / 255.0;
        } else {
            for c in 0..3 {
                out[c * s * s + at] = f32::from(pixel[c]) / 255.0;
            }
        }
    }
    out
}

fn flip_horizontal(image: &[f32], channels: usize, side: usize) -> Vec<f32> {
    let mut out = image.to_vec();
    for c in 0..channels {
        for y in 0..side {
            let row = &mut out[(c * side + y) * side..(c * side + y + 1) * side];
            row.reverse();
        }
    }
    out
}

/// The caption of an image: its sidecar `.txt` (kohya's convention), else its
/// file name with `_` and `-` read as spaces.
pub fn caption_of(path: &Path) -> String {
    if let Ok(text) = std::fs::read_to_string(path.with_extension("txt")) {
        let text = text.trim();
        if !text.is_empty() {
            return text.to_owned();
        }
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    stem.replace(['_', '-'], " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(folder: &Path, side: usize, channels: usize, fit: Fit) -> FolderSpec {
        FolderSpec { folder: folder.to_owned(), side, channels, fit, flip: false }
    }

    #[test]
    fn fits_lay_alpha_on_white_and_keep_the_subject() {
        // 8×4: left half red, right half transparent.
        let mut img = RgbaImage::from_pixel(8, 4, Rgba([255, 0, 0, 255]));
        for y in 0..4 {
            for x in 4..8 {
                img.put_pixel(x, y, Rgba([0, 0, 0, 0]));
            }
        }
        let dynamic = DynamicImage::ImageRgba8(img);
        let dir = Path::new("/nonexistent");
        let stretch = fit(&dynamic, &spec(dir, 4, 3, Fit::Stretch));
        // Red channel is 1 everywhere (red or white); green is 0 on the left, 1 on the right.
        assert!(stretch[..16].iter().all(|v| (*v - 1.0).abs() < 1e-6));
        assert!(stretch[16] < 0.01 && stretch[16 + 3] > 0.99);
        let crop = fit(&dynamic, &spec(dir, 4, 1, Fit::Crop));
        assert_eq!(crop.len(), 16);
        let pad = fit(&dynamic, &spec(dir, 8, 3, Fit::Pad));
        // Padded rows (top two) take the corner colour: red.
        assert!((pad[0] - 1.0).abs() < 1e-6 && pad[64].abs() < 1e-6);
        let flipped = flip_horizontal(&[1.0, 2.0, 3.0, 4.0], 1, 2);
        assert_eq!(flipped, [2.0, 1.0, 4.0, 3.0]);
    }

    #[test]
    fn captions_come_from_sidecars_or_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), " a red fox \n").unwrap();
        assert_eq!(caption_of(&dir.path().join("a.png")), "a red fox");
        assert_eq!(caption_of(&dir.path().join("blue_bird-flying.jpg")), "blue bird flying");
    }

    #[test]
    fn settings_are_checked() {
        let dir = Path::new(".");
        assert!(spec(dir, 32, 3, Fit::Crop).check().is_ok());
        assert!(spec(dir, 30, 3, Fit::Crop).check().is_err());
        assert!(spec(dir, 32, 2, Fit::Crop).check().is_err());
    }
}
