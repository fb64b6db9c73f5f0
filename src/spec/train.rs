//! What a training run reports.

use serde::{Deserialize, Serialize};

/// Metrics after one epoch, averaged over its batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GanEpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Discriminator loss (real + fake terms).
    pub d_loss: f64,
    /// Generator loss (−log D(G(z))).
    pub g_loss: f64,
    /// Mean probability the discriminator gave real images.
    pub d_real: f64,
    /// Mean probability it gave generated images (before its update).
    pub d_fake: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Mean distance between generated images over that between real ones
    /// (the mode-collapse check, each epoch); `None` with fewer than two real images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diversity: Option<f64>,
}

/// One finished batch of any family, for the Train view's curves.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainTick {
    /// 1-based epoch (or evaluation round).
    pub epoch: usize,
    /// 1-based batch within it.
    pub batch: usize,
    /// Batches in it.
    pub batches: usize,
    /// Named losses.
    pub values: Vec<(&'static str, f64)>,
}

/// One finished epoch of any family, for the Train view.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochSummary {
    /// 1-based epoch (or evaluation round).
    pub epoch: usize,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Named metrics (held-out losses, D(real), the spread…).
    pub values: Vec<(&'static str, f64)>,
    /// The report in words.
    pub line: String,
    /// Mode or posterior collapse, when seen.
    pub warning: Option<String>,
}

/// Below this share of the real images' spread, generated images look alike: mode collapse.
pub const COLLAPSE_RATIO: f64 = 0.5;

impl GanEpochReport {
    /// A warning when the generator's samples look alike, else `None`.
    pub fn collapse_warning(&self) -> Option<String> {
        let ratio = self.diversity.filter(|r| *r < COLLAPSE_RATIO)?;
        Some(format!(
            "mode collapse? generated images spread only {:.0} % as far apart as real ones; \
             try a lower learning rate, more data or another seed",
            ratio * 100.0
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrow_spread_is_called_mode_collapse() {
        let report = |diversity| GanEpochReport {
            epoch: 1,
            d_loss: 1.0,
            g_loss: 1.0,
            d_real: 0.5,
            d_fake: 0.5,
            seconds: 1.0,
            diversity,
        };
        assert!(report(Some(0.2)).collapse_warning().is_some_and(|w| w.contains("20 %")));
        assert!(report(Some(0.9)).collapse_warning().is_none());
        assert!(report(None).collapse_warning().is_none());
        // Reports logged before the check existed still read.
        let old = r#"{"epoch":1,"d_loss":1.0,"g_loss":1.0,"d_real":0.5,"d_fake":0.5,"seconds":1.0}"#;
        assert_eq!(serde_json::from_str::<GanEpochReport>(old).unwrap().diversity, None);
    }
}
