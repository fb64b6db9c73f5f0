//! The 2-D latent map: a canvas where the pointer is the latent, over the
//! encoded test set drawn as a class-coloured scatter.

use std::sync::Arc;

use egui::{Pos2, Rect, Sense, Stroke, Vec2, pos2};

use super::scatter::{ScatterCallback, ScatterPoint, paint as paint_scatter};
use super::theme;

/// Points for the GPU, built once per model.
pub struct MapPoints {
    /// Instances for the shader.
    pub points: Arc<Vec<ScatterPoint>>,
    /// Changes whenever the point set does.
    pub version: u64,
}

/// Latent ↔ screen mapping for a canvas rect (z2 grows upwards).
fn to_screen(rect: Rect, z: [f32; 2]) -> Pos2 {
    let r = theme::LATENT_RANGE;
    pos2(rect.left() + (z[0] + r) / (2.0 * r) * rect.width(), rect.bottom() - (z[1] + r) / (2.0 * r) * rect.height())
}

fn to_latent(rect: Rect, p: Pos2) -> [f32; 2] {
    let r = theme::LATENT_RANGE;
    let x = (p.x - rect.left()) / rect.width() * 2.0 * r - r;
    let y = (rect.bottom() - p.y) / rect.height() * 2.0 * r - r;
    [x.clamp(-r, r), y.clamp(-r, r)]
}

/// Draws the map; returns the new latent when the user clicked or dragged on it.
pub fn latent_map_ui(
    ui: &mut egui::Ui,
    points: Option<&MapPoints>,
    gpu: bool,
    current: [f32; 2],
    path: &[[f32; 2]],
) -> Option<[f32; 2]> {
    let (response, painter) = ui.allocate_painter(Vec2::splat(theme::MAP_SIDE), Sense::click_and_drag());
    let response = response.on_hover_text("Click or drag: the pointer position is the latent (z1, z2)");
    let rect = response.rect;
    painter.rect_filled(rect, 4.0, theme::MAP_BACKGROUND);
    for v in -3..=3 {
        let a = to_screen(rect, [v as f32, -theme::LATENT_RANGE]);
        let b = to_screen(rect, [v as f32, theme::LATENT_RANGE]);
        let c = to_screen(rect, [-theme::LATENT_RANGE, v as f32]);
        let d = to_screen(rect, [theme::LATENT_RANGE, v as f32]);
        let width = if v == 0 { 1.5 } else { 0.5 };
        painter.line_segment([a, b], Stroke::new(width, theme::MAP_GRID));
        painter.line_segment([c, d], Stroke::new(width, theme::MAP_GRID));
    }
    if let Some(map) = points {
        if gpu {
            let r = theme::LATENT_RANGE;
            paint_scatter(
                &painter.with_clip_rect(rect),
                rect,
                ScatterCallback {
                    points: map.points.clone(),
                    version: map.version,
                    lo: [-r, -r],
                    hi: [r, r],
                    radius_px: 2.0,
                    canvas: rect,
                },
            );
        } else {
            // No wgpu renderer (e.g. glow): a thinned CPU scatter keeps the map usable.
            let step = (map.points.len() / 2000).max(1);
            for p in map.points.iter().step_by(step) {
                let color = theme::CLASS_COLORS[p.label as usize % 10].gamma_multiply(0.75);
                painter.circle_filled(to_screen(rect, p.latent), 1.5, color);
            }
        }
    }
    if path.len() > 1 {
        let pts: Vec<Pos2> = path.iter().map(|z| to_screen(rect, *z)).collect();
        painter.add(egui::Shape::line(pts.clone(), Stroke::new(1.5, theme::ENDPOINT)));
        for p in [pts[0], pts[pts.len() - 1]] {
            painter.circle_stroke(p, 5.0, Stroke::new(2.0, theme::ENDPOINT));
        }
    }
    let c = to_screen(rect, current);
    painter.circle_stroke(c, 6.0, Stroke::new(2.0, theme::CURSOR));
    painter.line_segment([c - Vec2::X * 10.0, c + Vec2::X * 10.0], Stroke::new(1.0, theme::CURSOR));
    painter.line_segment([c - Vec2::Y * 10.0, c + Vec2::Y * 10.0], Stroke::new(1.0, theme::CURSOR));
    if response.clicked() || response.dragged() {
        return response.interact_pointer_pos().map(|p| to_latent(rect, p));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_and_latent_round_trip() {
        let rect = Rect::from_min_size(pos2(10.0, 20.0), Vec2::splat(300.0));
        for z in [[0.0, 0.0], [-3.0, 3.0], [1.5, -2.25]] {
            let back = to_latent(rect, to_screen(rect, z));
            assert!((back[0] - z[0]).abs() < 1e-4 && (back[1] - z[1]).abs() < 1e-4, "{z:?} → {back:?}");
        }
        // z2 grows upwards: the top edge is +3.
        assert!((to_latent(rect, rect.center_top())[1] - 3.0).abs() < 1e-5);
    }
}
