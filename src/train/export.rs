//! What every exported model folder records about itself.

/// Names and provenance for the exported folder.
pub struct ExportInfo<'a> {
    /// Model id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// The command that trained it, for the card.
    pub command: &'a str,
}
