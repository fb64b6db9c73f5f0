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
}
