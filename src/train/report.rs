//! What every family's batches and epochs say, in one shape: named values
//! for curves, a line for a log, and a warning when training goes wrong. The
//! terminal, the Train view and the worker's events read runs through it, so
//! no view needs to know which family it shows.

use crate::spec::train::{EpochSummary, GanEpochReport};

/// A batch's losses or an epoch's report, as named values and words.
pub trait Reported {
    /// Named values for curves, in legend order.
    fn values(&self) -> Vec<(&'static str, f64)>;
    /// One line for a log or a status bar.
    fn line(&self) -> String {
        self.values().iter().map(|(name, v)| format!("{name} {v:.4}")).collect::<Vec<_>>().join(", ")
    }
    /// Something the user should know (collapse), else `None`.
    fn warning(&self) -> Option<String> {
        None
    }
    /// Wall-clock seconds the epoch took, for epoch reports.
    fn seconds(&self) -> f64 {
        0.0
    }
    /// The 1-based epoch (or evaluation round).
    fn epoch(&self) -> usize {
        0
    }
    /// The report as plain data for the Train view.
    fn summary(&self) -> EpochSummary {
        EpochSummary {
            epoch: self.epoch(),
            seconds: self.seconds(),
            values: self.values(),
            line: self.line(),
            warning: self.warning(),
        }
    }
}

/// A batch's single loss (the VAE's negative ELBO, the autoencoder's L1,
/// the noise-prediction error, the GPT's nats per character).
impl Reported for f64 {
    fn values(&self) -> Vec<(&'static str, f64)> {
        vec![("loss", *self)]
    }
}

impl Reported for GanEpochReport {
    fn values(&self) -> Vec<(&'static str, f64)> {
        let mut values =
            vec![("D", self.d_loss), ("G", self.g_loss), ("D(real)", self.d_real), ("D(fake)", self.d_fake)];
        values.extend(self.diversity.map(|d| ("spread", d)));
        values
    }
    fn line(&self) -> String {
        let spread = self.diversity.map(|d| format!(", spread {d:.2} of real")).unwrap_or_default();
        format!(
            "epoch {}: D {:.3}, G {:.3}, D(real) {:.2}, D(fake) {:.2}{spread}, {:.1} s",
            self.epoch, self.d_loss, self.g_loss, self.d_real, self.d_fake, self.seconds
        )
    }
    fn warning(&self) -> Option<String> {
        self.collapse_warning()
    }
    fn seconds(&self) -> f64 {
        self.seconds
    }
    fn epoch(&self) -> usize {
        self.epoch
    }
}
