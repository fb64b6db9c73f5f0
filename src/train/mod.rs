//! Training machinery shared by every family: AdamW (and the weight
//! average), seeded randomness, cancel tokens, checkpoint folders and the
//! run's JSON-lines log.

pub mod adam;
pub mod cancel;
pub mod checkpoint;
pub mod log;
pub mod rng;
