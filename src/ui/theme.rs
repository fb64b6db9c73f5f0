//! Colours and sizes shared by the panels.

use egui::Color32;

/// Side of the main decoded image, in points.
pub const IMAGE_SIDE: f32 = 256.0;
/// Side of the latent map canvas, in points.
pub const MAP_SIDE: f32 = 300.0;
/// Side of one strip thumbnail, in points.
pub const THUMB_SIDE: f32 = 64.0;
/// Space between the panel's columns, in points.
pub const COLUMN_GAP: f32 = 24.0;
/// The latent range the sliders and the map cover (±3σ).
pub const LATENT_RANGE: f32 = 3.0;
/// Seconds per animation frame.
pub const FRAME_SECONDS: f64 = 0.08;

/// Text of failed jobs.
pub const ERROR: Color32 = Color32::from_rgb(235, 110, 100);
/// Text of successful saves.
pub const OK: Color32 = Color32::from_rgb(130, 200, 130);
/// The latent map's background.
pub const MAP_BACKGROUND: Color32 = Color32::from_rgb(24, 26, 30);
/// Axes and grid of the latent map.
pub const MAP_GRID: Color32 = Color32::from_rgb(55, 58, 66);
/// The current latent's marker.
pub const CURSOR: Color32 = Color32::WHITE;
/// Interpolation endpoints and path.
pub const ENDPOINT: Color32 = Color32::from_rgb(255, 200, 60);
/// Curves of a training run, in legend order (then round again).
pub fn series(i: usize) -> Color32 {
    const PALETTE: [Color32; 8] = [
        D_LOSS,
        G_LOSS,
        Color32::from_rgb(130, 200, 130),
        Color32::from_rgb(230, 190, 80),
        Color32::from_rgb(190, 130, 230),
        Color32::from_rgb(90, 200, 210),
        Color32::from_rgb(240, 150, 200),
        Color32::from_rgb(170, 170, 170),
    ];
    PALETTE[i % PALETTE.len()]
}

/// The discriminator's loss curve.
pub const D_LOSS: Color32 = Color32::from_rgb(235, 110, 90);
/// The generator's loss curve.
pub const G_LOSS: Color32 = Color32::from_rgb(100, 150, 240);

/// Backgrounds of prompt tokens in the token view, alternating.
pub const PROMPT_TOKENS: [Color32; 2] = [Color32::from_rgb(52, 74, 115), Color32::from_rgb(88, 112, 160)];
/// Backgrounds of generated tokens in the token view, alternating.
pub const OUTPUT_TOKENS: [Color32; 2] = [Color32::from_rgb(46, 96, 66), Color32::from_rgb(82, 138, 100)];

/// The shader's palette, for the legend and the CPU fallback (keep in sync with shaders/scatter.wgsl).
pub const CLASS_COLORS: [Color32; 10] = [
    Color32::from_rgb(78, 121, 167),
    Color32::from_rgb(242, 142, 43),
    Color32::from_rgb(225, 87, 89),
    Color32::from_rgb(118, 183, 178),
    Color32::from_rgb(89, 161, 79),
    Color32::from_rgb(237, 201, 72),
    Color32::from_rgb(176, 122, 161),
    Color32::from_rgb(255, 157, 167),
    Color32::from_rgb(156, 117, 95),
    Color32::from_rgb(186, 176, 172),
];
