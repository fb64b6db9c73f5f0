//! The About window: every model with its data set and license.

use crate::io::manifest::ModelManifest;

/// Shows the window while `open` is true.
pub fn about_window(ctx: &egui::Context, open: &mut bool, models: &[ModelManifest]) {
    egui::Window::new("About Latent Studio").open(open).resizable(true).default_width(520.0).show(ctx, |ui| {
        ui.label(format!("Latent Studio {} — a local-first studio for generative models.", env!("CARGO_PKG_VERSION")));
        ui.label("Everything runs on this machine, offline.");
        ui.separator();
        ui.heading("Models");
        egui::Grid::new("about-models").striped(true).num_columns(3).show(ui, |ui| {
            ui.strong("Model");
            ui.strong("Trained on");
            ui.strong("License");
            ui.end_row();
            for m in models {
                ui.label(format!("{} ({})", m.name, m.id));
                ui.label(&m.dataset);
                ui.label(&m.license);
                ui.end_row();
            }
        });
        ui.separator();
        ui.label("Built with egui, eframe, wgpu and candle.");
    });
}
