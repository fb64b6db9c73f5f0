//! The eframe application: persisted settings, commands, the job table and
//! the glue between panels and the worker.

pub mod dialogs;
pub mod frame_bench;
pub mod renderer_priority;
pub mod settings;
pub mod studio;

use std::path::PathBuf;

pub use studio::StudioApp;

/// Opens the studio window and runs until it is closed.
pub fn run_gui(models_dir: PathBuf) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        viewport: window_icon()
            .map_or_else(egui::ViewportBuilder::default, |icon| egui::ViewportBuilder::default().with_icon(icon))
            .with_inner_size([1200.0, 780.0])
            .with_title("Latent Studio")
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "Latent Studio",
        options,
        Box::new(move |cc| Ok(Box::new(StudioApp::new(cc, models_dir)?) as Box<dyn eframe::App>)),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}

/// The window icon: a digit decoded by the shipped `digits-2d` VAE.
fn window_icon() -> Option<egui::IconData> {
    let img = image::load_from_memory(include_bytes!("../../assets/icon.png")).ok()?.to_rgba8();
    Some(egui::IconData { width: img.width(), height: img.height(), rgba: img.into_raw() })
}
