//! The History view: every output in the output folder, newest first, from
//! the files' own metadata; search by prompt, model, seed or date, filter
//! by family, reuse an image's settings, open it on the latent pad, compare
//! two side by side, move one to the trash and undo. The list is
//! virtualised: only visible rows are laid out and ask for thumbnails.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use egui::{RichText, TextureHandle, Vec2};

use crate::history::entry::{Family, HistoryEntry};
use crate::ui::commands::UiCommand;

/// Row height, in points (thumbnails are a little smaller).
const ROW: f32 = 56.0;
/// Side of a thumbnail, in pixels.
pub const THUMB: u32 = 48;

/// The History's state.
#[derive(Default)]
pub struct HistoryPanel {
    pub entries: Vec<HistoryEntry>,
    pub query: String,
    pub family: Option<Family>,
    /// Indices into `entries` that match the query and family.
    shown: Vec<usize>,
    /// (query, family, entries) the shown list was computed for.
    shown_for: Option<(String, Option<Family>, usize)>,
    pub thumbnails: HashMap<PathBuf, TextureHandle>,
    /// Thumbnails asked for and not arrived yet.
    pub asked: HashSet<PathBuf>,
    /// The selected entry and the one compared with it (paths).
    pub selected: Option<PathBuf>,
    pub compare: Option<PathBuf>,
    /// An index refresh is running.
    pub refreshing: bool,
    /// The file last moved to the trash, for Undo.
    pub undo: Option<PathBuf>,
}

impl HistoryPanel {
    /// New entries (after a refresh); the shown list is computed again.
    pub fn set_entries(&mut self, entries: Vec<HistoryEntry>) {
        self.entries = entries;
        self.shown_for = None;
        self.refreshing = false;
    }

    /// The entries shown, in order.
    pub fn shown(&mut self) -> &[usize] {
        let key = (self.query.clone(), self.family, self.entries.len());
        if self.shown_for.as_ref() != Some(&key) {
            let (query, family) = (&self.query, self.family);
            self.shown = (0..self.entries.len())
                .filter(|&i| family.is_none_or(|f| self.entries[i].family == f) && self.entries[i].matches(query))
                .collect();
            self.shown_for = Some(key);
        }
        &self.shown
    }

    fn entry(&self, path: &PathBuf) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| &e.path == path)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            ui.label("Search");
            ui.add(egui::TextEdit::singleline(&mut self.query).hint_text("prompt, model, seed, date…"));
            egui::ComboBox::from_label("Family")
                .selected_text(self.family.map_or("every family", Family::label))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.family, None, "every family");
                    for f in Family::ALL {
                        ui.selectable_value(&mut self.family, Some(f), f.label());
                    }
                });
            if ui.add_enabled(!self.refreshing, egui::Button::new("Refresh")).clicked() {
                out.push(UiCommand::RefreshHistory);
            }
            if self.refreshing {
                super::busy::busy(ui);
            }
            if let Some(path) = &self.undo
                && ui.button(format!("Undo trash of {}", file_name(path))).clicked()
            {
                out.push(UiCommand::UndoTrash);
            }
        });
        let total = self.entries.len();
        let count = self.shown().len();
        ui.label(RichText::new(format!("{count} of {total} files")).small());
        self.selection_ui(ui, out);
        ui.separator();
        let mut wanted = Vec::new();
        egui::ScrollArea::vertical().auto_shrink([false, false]).show_rows(ui, ROW, count, |ui, rows| {
            for row in rows {
                let i = self.shown[row];
                let entry = &self.entries[i];
                let selected = self.selected.as_ref() == Some(&entry.path);
                let response = ui
                    .horizontal(|ui| {
                        ui.set_min_height(ROW - 4.0);
                        match self.thumbnails.get(&entry.path) {
                            Some(t) => {
                                ui.add(egui::Image::new(t).fit_to_exact_size(Vec2::splat(ROW - 8.0)));
                            }
                            None => {
                                if !self.asked.contains(&entry.path) && entry.family != Family::Text {
                                    wanted.push(entry.path.clone());
                                }
                                ui.add_space(ROW - 8.0);
                            }
                        }
                        let seeds: Vec<String> = entry.seeds.iter().map(u64::to_string).collect();
                        let prompt: String = entry.prompt.chars().take(70).collect();
                        let text = format!(
                            "{}  ·  {}  ·  {}  ·  seed {}\n{}",
                            entry.date(),
                            entry.family.label(),
                            entry.model,
                            seeds.join(","),
                            prompt
                        );
                        ui.selectable_label(selected, text)
                    })
                    .inner;
                if response.clicked() {
                    out.push(UiCommand::SelectHistory(entry.path.clone()));
                }
            }
        });
        if !wanted.is_empty() {
            self.asked.extend(wanted.iter().cloned());
            out.push(UiCommand::LoadThumbnails(wanted));
        }
    }

    /// The selected file: its settings, actions and the comparison.
    fn selection_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        let Some(path) = self.selected.clone() else { return };
        let Some(entry) = self.entry(&path).cloned() else { return };
        ui.group(|ui| {
            ui.horizontal(|ui| {
                for side in [Some(&path), self.compare.as_ref()].into_iter().flatten() {
                    if let Some(t) = self.thumbnails.get(side) {
                        ui.vertical(|ui| {
                            ui.add(egui::Image::new(t).fit_to_exact_size(Vec2::splat(160.0)));
                            ui.label(RichText::new(file_name(side)).small());
                        });
                    }
                }
                ui.vertical(|ui| {
                    ui.label(RichText::new(file_name(&path)).strong());
                    if let Some(record) = &entry.record {
                        ui.label(record.to_params().to_a1111());
                    } else if !entry.prompt.is_empty() {
                        ui.label(&entry.prompt);
                    }
                    if let Some(problem) = &entry.problem {
                        ui.colored_label(ui.visuals().warn_fg_color, problem);
                    }
                    ui.horizontal(|ui| {
                        let reusable = entry.record.is_some();
                        if ui.add_enabled(reusable, egui::Button::new("Reuse settings")).clicked() {
                            out.push(UiCommand::ReuseHistory(path.clone()));
                        }
                        if ui.add_enabled(reusable, egui::Button::new("Open in the latent view")).clicked() {
                            out.push(UiCommand::OpenHistoryInPad(path.clone()));
                        }
                        if ui.button("Compare with…").on_hover_text("then select another file").clicked() {
                            self.compare = Some(path.clone());
                        }
                        if self.compare.is_some() && ui.button("Stop comparing").clicked() {
                            self.compare = None;
                        }
                        if ui.button("Move to trash").clicked() {
                            out.push(UiCommand::TrashHistory(path.clone()));
                        }
                    });
                });
            });
        });
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}
