//! The status bar: running jobs with progress and Cancel, then recent messages.

use crate::ui::commands::UiCommand;
use crate::ui::jobs::{JobState, JobTable};

use super::theme;

/// A message for the user, e.g. a saved file or a failure.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The text, naming the file where there is one.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
}

/// Where models run: a short name for the bar, the details for its tooltip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// "CPU", "CUDA GPU", …
    pub kind: String,
    /// "CPU (2 threads, AVX-512)", …
    pub detail: String,
}

/// Draws the bar, starting with the device models run on.
pub fn status_ui(
    ui: &mut egui::Ui,
    device: &DeviceInfo,
    jobs: &JobTable,
    notices: &[Notice],
    out: &mut Vec<UiCommand>,
) {
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(&device.kind).weak())
            .on_hover_text(format!("Models run on the {}", device.detail));
        ui.separator();
        for (id, job) in jobs.active() {
            match &job.state {
                JobState::Running { step, total, message } if *total > 0 => {
                    let bar = egui::ProgressBar::new(*step as f32 / *total as f32)
                        .desired_width(160.0)
                        .text(format!("{} {message}", job.label));
                    ui.add(bar);
                }
                _ => {
                    super::busy::busy(ui);
                    ui.label(&job.label);
                }
            }
            if ui.small_button("Cancel").on_hover_text(format!("Cancel {}", job.label)).clicked() {
                out.push(UiCommand::Cancel(id));
            }
        }
        if let Some(n) = notices.last() {
            let color = if n.error { theme::ERROR } else { theme::OK };
            ui.label(egui::RichText::new(&n.text).color(color)).on_hover_ui(|ui| {
                for n in notices.iter().rev().take(10) {
                    ui.label(&n.text);
                }
            });
        }
    });
}
