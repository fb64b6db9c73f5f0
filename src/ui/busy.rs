//! A "working…" indicator that animates at 2 frames a second. egui's own
//! spinner asks for a new frame every frame, so while a job runs the UI would
//! redraw as fast as it can; under a software renderer that takes a whole
//! core from the model the job is running (text streamed at a sixth of its
//! speed in the real window, issue 18).

use std::time::Duration;

/// How often the indicator moves.
const TICK: Duration = Duration::from_millis(500);

/// Says that frames will come anyway until egui time `until` (seconds), as
/// they do while text streams in: the indicators then step with those frames
/// instead of asking for frames of their own, which fell between the stream's
/// and doubled the frame rate.
pub fn frames_come_until(ctx: &egui::Context, until: f64) {
    ctx.data_mut(|d| d.insert_temp(driven_id(), until));
}

/// Whether frames come anyway now (see [`frames_come_until`]).
pub fn frames_come(ctx: &egui::Context) -> bool {
    let now = ctx.input(|i| i.time);
    ctx.data(|d| d.get_temp::<f64>(driven_id())).is_some_and(|until| now < until)
}

fn driven_id() -> egui::Id {
    egui::Id::unique("busy-frames-come-until")
}

/// Draws the indicator and schedules its next step.
pub fn busy(ui: &mut egui::Ui) -> egui::Response {
    let size = ui.spacing().interact_size.y;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let time = ui.input(|i| i.time);
        let step = (time / TICK.as_secs_f64()).floor();
        let start = step * std::f64::consts::TAU / 8.0;
        let radius = rect.height() / 2.0 - 2.0;
        let points: Vec<egui::Pos2> = (0..=12)
            .map(|i| {
                let angle = start + f64::from(i) / 12.0 * std::f64::consts::PI * 1.5;
                rect.center() + radius * egui::vec2(angle.cos() as f32, angle.sin() as f32)
            })
            .collect();
        let stroke = ui.visuals().widgets.noninteractive.fg_stroke;
        ui.painter().add(egui::Shape::line(points, stroke));
        if !frames_come(ui.ctx()) {
            ui.ctx().request_repaint_after(TICK);
        }
    }
    response
}
