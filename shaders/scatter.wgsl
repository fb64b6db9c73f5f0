// Latent-map scatter: one instanced quad per encoded test image, drawn as a
// soft disc coloured by class. The viewport is the canvas rect (egui_wgpu sets
// it), so clip space maps straight onto the canvas.

struct View {
    // Latent coordinates at the canvas's left/bottom and right/top edges.
    lo: vec2<f32>,
    hi: vec2<f32>,
    // Disc radius in clip units (x, y), so discs stay round on any aspect.
    radius: vec2<f32>,
    // Overall opacity of the points.
    alpha: f32,
    _pad: f32,
};

@group(0) @binding(0) var<uniform> view: View;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    @location(0) offset: vec2<f32>,
    @location(1) color: vec4<f32>,
};

// Ten colours for ten classes (Tableau 10), gamma-space, as egui expects.
const PALETTE = array<vec3<f32>, 10>(
    vec3<f32>(0.306, 0.475, 0.655), vec3<f32>(0.949, 0.557, 0.169), vec3<f32>(0.882, 0.341, 0.349),
    vec3<f32>(0.463, 0.718, 0.698), vec3<f32>(0.349, 0.631, 0.310), vec3<f32>(0.929, 0.788, 0.282),
    vec3<f32>(0.690, 0.478, 0.631), vec3<f32>(1.000, 0.616, 0.655), vec3<f32>(0.612, 0.459, 0.373),
    vec3<f32>(0.729, 0.690, 0.675),
);

const CORNERS = array<vec2<f32>, 6>(
    vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
    vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0),
);

@vertex
fn vs_main(@builtin(vertex_index) corner: u32, @location(0) latent: vec2<f32>, @location(1) label: u32) -> VsOut {
    let unit = (latent - view.lo) / (view.hi - view.lo);     // 0..1 across the canvas
    let center = unit * 2.0 - vec2<f32>(1.0, 1.0);          // clip space
    let c = CORNERS[corner];
    var out: VsOut;
    out.position = vec4<f32>(center + c * view.radius, 0.0, 1.0);
    out.offset = c;
    let rgb = PALETTE[label % 10u];
    out.color = vec4<f32>(rgb, view.alpha);
    return out;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let d = length(in.offset);
    if d > 1.0 {
        discard;
    }
    // Soft edge; premultiplied alpha as egui's blend state expects.
    let a = in.color.a * (1.0 - smoothstep(0.6, 1.0, d));
    return vec4<f32>(in.color.rgb * a, a);
}
