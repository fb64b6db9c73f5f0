//! Panels and widgets. egui only: nothing here touches models or threads.

pub mod about;
pub mod backends_view;
pub mod busy;
pub mod commands;
pub mod conversation_view;
pub mod history_panel;
pub mod image_panel;
pub mod jobs;
pub mod latent_map;
pub mod latent_panel;
pub mod models_panel;
pub mod models_view;
pub mod pad_panel;
pub mod scatter;
pub mod status;
pub mod text_panel;
pub mod theme;
pub mod train_curves;
mod train_folder_ui;
pub mod train_panel;
pub mod travel_panel;
pub mod vae_tools_panel;
