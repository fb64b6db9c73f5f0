//! Training machinery shared by every family: the error type, mini-batches,
//! seeded initialisation and randomness, AdamW (and the weight average),
//! cancel tokens, checkpoint folders and the run's JSON-lines log.

pub mod adam;
pub mod batch;
pub mod cancel;
pub mod checkpoint;
pub mod driver;
pub mod error;
pub mod export;
pub mod init;
pub mod log;
pub mod report;
pub mod rng;
