//! Everything the studio has written, found again: the History view and
//! `latent-studio history` list an output folder from the files' own
//! metadata (`entry`), so outputs of earlier sessions and other tools'
//! PNGs show too. `index` keeps what it read on disk and re-reads only
//! files that changed; `trash` moves files to the desktop's trash and back.

pub mod entry;
pub mod index;
pub mod trash;

pub use entry::{Family, HistoryEntry};
pub use index::{HistoryIndex, Refresh, thumbnail};
