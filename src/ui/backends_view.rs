//! The Models view's remote backends: add one (its protocol, URL and an
//! optional API key), see each one's state (checking, healthy, paused with
//! the error and the next try), its models and its queue (jobs running for
//! us, jobs done), remove one.

use egui::RichText;

use super::commands::UiCommand;
use crate::hub::config::Token;
use crate::spec::backend::{BackendConfig, BackendHealth, BackendKind, BackendView};

/// The add-a-backend form.
pub struct BackendsPanel {
    pub url_input: String,
    pub kind_input: BackendKind,
    /// Cleared once the backend is added; never shown.
    pub key_input: String,
}

impl Default for BackendsPanel {
    fn default() -> Self {
        Self { url_input: String::new(), kind_input: BackendKind::OpenAi, key_input: String::new() }
    }
}

/// What a protocol is called in the view.
fn kind_label(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::OpenAi => "OpenAI-compatible (text)",
        BackendKind::A1111 => "A1111-compatible (images)",
        BackendKind::Local => "this machine",
    }
}

impl BackendsPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, backends: &[BackendView], out: &mut Vec<UiCommand>) {
        ui.heading("Remote backends");
        ui.label(
            RichText::new(
                "Servers that run models for the studio: llama.cpp's server, vLLM, Ollama, LM Studio (text); \
                 A1111, Forge, stable-diffusion.cpp (images); another studio's `latent-studio serve`.",
            )
            .small()
            .weak(),
        );
        self.add_ui(ui, out);
        if backends.is_empty() {
            ui.label(RichText::new("No backends: every job runs on this machine.").weak());
            return;
        }
        egui::Grid::new("backends").striped(true).num_columns(5).show(ui, |ui| {
            for view in backends {
                backend_row(ui, view, out);
                ui.end_row();
            }
        });
    }

    fn add_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<UiCommand>) {
        ui.horizontal(|ui| {
            let label = ui.label("Backend URL");
            ui.add(egui::TextEdit::singleline(&mut self.url_input).hint_text("http://host:port").desired_width(220.0))
                .labelled_by(label.id);
            egui::ComboBox::from_label("Protocol").selected_text(kind_label(self.kind_input)).show_ui(ui, |ui| {
                for kind in [BackendKind::OpenAi, BackendKind::A1111] {
                    ui.selectable_value(&mut self.kind_input, kind, kind_label(kind));
                }
            });
            let label = ui.label("API key");
            ui.add(
                egui::TextEdit::singleline(&mut self.key_input)
                    .password(true)
                    .hint_text("optional")
                    .desired_width(140.0),
            )
            .labelled_by(label.id)
            .on_hover_text("Saved owner-only apart from the settings; never shown, logged or written into outputs");
            let url = self.url_input.trim().trim_end_matches('/').to_owned();
            let valid = url.starts_with("http://") || url.starts_with("https://");
            if ui.add_enabled(valid, egui::Button::new("Add backend")).clicked() {
                let config = BackendConfig { kind: self.kind_input, url };
                let key = Token::parse(&std::mem::take(&mut self.key_input));
                self.url_input.clear();
                out.push(UiCommand::AddBackend { config, key });
            }
        });
    }
}

fn backend_row(ui: &mut egui::Ui, view: &BackendView, out: &mut Vec<UiCommand>) {
    ui.label(RichText::new(&view.config.url).monospace());
    ui.label(RichText::new(kind_label(view.config.kind)).small());
    match &view.health {
        BackendHealth::Unknown => {
            ui.label(RichText::new("checking…").weak());
        }
        BackendHealth::Healthy => {
            ui.colored_label(egui::Color32::from_rgb(90, 170, 90), "healthy");
        }
        BackendHealth::Paused { failures, retry_in_secs, error } => {
            let text = format!("unhealthy (retry in {retry_in_secs} s)");
            ui.colored_label(ui.visuals().warn_fg_color, text)
                .on_hover_text(format!("{failures} failed check(s) in a row: {error}"));
        }
    }
    let models = match view.models.len() {
        0 => "no models".to_owned(),
        1 => view.models[0].clone(),
        n => format!("{n} models"),
    };
    ui.label(models).on_hover_text(view.models.join("\n"));
    ui.horizontal(|ui| {
        ui.label(format!("{} running, {} done", view.in_flight, view.done));
        if ui.small_button("Remove").clicked() {
            out.push(UiCommand::RemoveBackend(view.config.clone()));
        }
    });
}

/// The models of healthy backends of `kind`, each with the backends that have it.
pub fn remote_models(backends: &[BackendView], kind: BackendKind) -> Vec<(String, Vec<String>)> {
    let mut models: Vec<(String, Vec<String>)> = Vec::new();
    for view in backends.iter().filter(|v| v.config.kind == kind && v.health == BackendHealth::Healthy) {
        for model in &view.models {
            match models.iter_mut().find(|(m, _)| m == model) {
                Some((_, urls)) => urls.push(view.config.url.clone()),
                None => models.push((model.clone(), vec![view.config.url.clone()])),
            }
        }
    }
    models
}

/// How a remote model shows in a picker: `model @ host` (and how many more backends have it).
pub fn remote_label(model: &str, urls: &[String]) -> String {
    let first = urls.first().map_or("", |u| crate::spec::backend::short_url(u));
    match urls.len() {
        0 | 1 => format!("{model} @ {first}"),
        n => format!("{model} @ {first} +{}", n - 1),
    }
}

/// The LoRAs of the healthy image backends that have `model`, each once.
pub fn remote_loras(backends: &[BackendView], model: &str) -> Vec<String> {
    let mut loras: Vec<String> = backends
        .iter()
        .filter(|v| v.config.kind == BackendKind::A1111 && v.health == BackendHealth::Healthy)
        .filter(|v| v.models.iter().any(|m| m == model))
        .flat_map(|v| v.loras.iter().cloned())
        .collect();
    loras.sort();
    loras.dedup();
    loras
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(url: &str, kind: BackendKind, health: BackendHealth, models: &[&str], loras: &[&str]) -> BackendView {
        BackendView {
            config: BackendConfig { kind, url: url.into() },
            health,
            models: models.iter().map(|m| m.to_string()).collect(),
            loras: loras.iter().map(|m| m.to_string()).collect(),
            in_flight: 0,
            done: 0,
        }
    }

    #[test]
    fn pickers_list_healthy_backends_models_once_with_their_backends() {
        let down = BackendHealth::Paused { failures: 1, retry_in_secs: 1, error: "x".into() };
        let views = [
            view("http://a:1", BackendKind::A1111, BackendHealth::Healthy, &["sd15", "xl"], &["film"]),
            view("http://b:2", BackendKind::A1111, BackendHealth::Healthy, &["sd15"], &["ink", "film"]),
            view("http://c:3", BackendKind::A1111, down, &["sd15"], &["gone"]),
            view("http://d:4", BackendKind::OpenAi, BackendHealth::Healthy, &["llama"], &[]),
        ];
        let images = remote_models(&views, BackendKind::A1111);
        assert_eq!(images[0], ("sd15".to_owned(), vec!["http://a:1".to_owned(), "http://b:2".to_owned()]));
        assert_eq!(images.len(), 2);
        assert_eq!(remote_label(&images[0].0, &images[0].1), "sd15 @ a:1 +1");
        assert_eq!(remote_loras(&views, "sd15"), ["film", "ink"]);
        assert_eq!(remote_loras(&views, "xl"), ["film"]);
        assert_eq!(remote_models(&views, BackendKind::OpenAi)[0].0, "llama");
    }
}
