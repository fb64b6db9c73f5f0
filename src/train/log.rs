//! A training run's log as JSON lines (`progress/losses.jsonl` in its
//! folder): one line per batch and per epoch, appended as training goes, so
//! that another process (the studio's Train view) can follow a run started
//! from the command line.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::error::FileError;
use crate::spec::train::GanEpochReport;

/// The log's file name inside the run folder's `progress/`.
pub const LOG_FILE: &str = "losses.jsonl";

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LogLine {
    /// A training step's losses.
    Batch { epoch: usize, batch: usize, batches: usize, d_loss: f64, g_loss: f64 },
    /// An epoch ended; its sample grid is `progress/epoch-NNN.png`.
    Epoch { report: GanEpochReport },
    /// Training finished (the model folder is written).
    Done { epochs: usize },
}

/// The sample grid of `epoch` in a run's `progress` folder.
pub fn grid_path(progress: &Path, epoch: usize) -> PathBuf {
    progress.join(format!("epoch-{epoch:03}.png"))
}

/// Appends `line` to the log in `progress`.
pub fn append(progress: &Path, line: &LogLine) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(progress.join(LOG_FILE))?;
    let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    writeln!(file, "{text}")
}

/// Reads a log as it grows: each call returns the complete lines written
/// since the last one.
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
}

impl LogFollower {
    /// Follows the log in `progress` from its start.
    pub fn new(progress: &Path) -> Self {
        Self { path: progress.join(LOG_FILE), offset: 0 }
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// New complete lines; a line still being written is left for next time.
    pub fn poll(&mut self) -> Result<Vec<LogLine>, FileError> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(FileError::new(&self.path, format!("cannot read: {e}"))),
        };
        let read_err = |e: std::io::Error| FileError::new(&self.path, format!("cannot read: {e}"));
        file.seek(SeekFrom::Start(self.offset)).map_err(read_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(read_err)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += complete as u64;
        let mut lines = Vec::new();
        for line in bytes[..complete].lines() {
            let line = line.map_err(read_err)?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str(&line)
                .map_err(|e| FileError::new(&self.path, format!("has a line that is not a training log entry: {e}")))?;
            lines.push(parsed);
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_sees_each_complete_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut follower = LogFollower::new(dir.path());
        assert!(follower.poll().unwrap().is_empty(), "no log yet");
        let batch = LogLine::Batch { epoch: 1, batch: 1, batches: 2, d_loss: 1.3, g_loss: 0.7 };
        append(dir.path(), &batch).unwrap();
        assert_eq!(follower.poll().unwrap(), vec![batch.clone()]);
        // Half a line: not returned until it is finished.
        let mut file = std::fs::OpenOptions::new().append(true).open(dir.path().join(LOG_FILE)).unwrap();
        write!(file, "{{\"kind\":\"done\",").unwrap();
        assert!(follower.poll().unwrap().is_empty());
        writeln!(file, "\"epochs\":3}}").unwrap();
        assert_eq!(follower.poll().unwrap(), vec![LogLine::Done { epochs: 3 }]);
        assert!(follower.poll().unwrap().is_empty());
    }
}
