//! The latent map's scatter of encoded test images, drawn by the GPU through an
//! egui_wgpu paint callback (`shaders/scatter.wgsl`): thousands of points cost
//! one instanced draw, not thousands of egui shapes.

use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, RenderState, ScreenDescriptor, wgpu};
use wgpu::util::DeviceExt;

/// One point as the vertex shader reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ScatterPoint {
    /// Latent coordinates (z1, z2).
    pub latent: [f32; 2],
    /// Class index, coloured by the shader's palette.
    pub label: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct ViewUniform {
    lo: [f32; 2],
    hi: [f32; 2],
    radius: [f32; 2],
    alpha: f32,
    _pad: f32,
}

/// GPU objects shared by every frame, stored in egui_wgpu's callback resources.
struct ScatterResources {
    pipeline: wgpu::RenderPipeline,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    instances: Option<(u64, wgpu::Buffer, u32)>,
}

/// Builds the pipeline once, when the app starts with a wgpu renderer.
pub fn install(render_state: &RenderState) {
    let device = &render_state.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("scatter.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/scatter.wgsl").into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("scatter_view"),
        entries: &[wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::VERTEX,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("scatter"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("scatter"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            buffers: &[Some(wgpu::VertexBufferLayout {
                array_stride: std::mem::size_of::<ScatterPoint>() as u64,
                step_mode: wgpu::VertexStepMode::Instance,
                attributes: &wgpu::vertex_attr_array![0 => Float32x2, 1 => Uint32],
            })],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState {
                format: render_state.target_format,
                blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        }),
        multiview_mask: None,
        cache: None,
    });
    let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("scatter_view"),
        contents: bytemuck::bytes_of(&ViewUniform::zeroed_view()),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    });
    let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("scatter_view"),
        layout: &layout,
        entries: &[wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }],
    });
    render_state.renderer.write().callback_resources.insert(ScatterResources {
        pipeline,
        uniform,
        bind_group,
        instances: None,
    });
}

impl ViewUniform {
    fn zeroed_view() -> Self {
        Self { lo: [-1.0, -1.0], hi: [1.0, 1.0], radius: [0.01, 0.01], alpha: 1.0, _pad: 0.0 }
    }
}

/// One frame's draw of the scatter inside a canvas rect.
pub struct ScatterCallback {
    /// The points; uploaded again only when `version` changes.
    pub points: Arc<Vec<ScatterPoint>>,
    /// Identifies the point set (e.g. a hash of the model id).
    pub version: u64,
    /// Latent range shown: lower-left and upper-right corners.
    pub lo: [f32; 2],
    /// See `lo`.
    pub hi: [f32; 2],
    /// Disc radius in points (logical pixels).
    pub radius_px: f32,
    /// The canvas in points (egui clips the draw to its on-screen part).
    pub canvas: egui::Rect,
}

/// The uniform for the part of the canvas that is on screen: egui_wgpu sets
/// the viewport to the canvas clamped to the window, so when the map is
/// scrolled partly out of view the latent range must shrink with it.
fn visible_view(cb: &ScatterCallback, ppp: f32, screen_px: [u32; 2]) -> ViewUniform {
    let full = egui::Rect::from_min_max(cb.canvas.min * ppp, cb.canvas.max * ppp);
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(screen_px[0] as f32, screen_px[1] as f32));
    let shown = full.intersect(screen);
    let (w, h) = (full.width().max(1.0), full.height().max(1.0));
    let x_at = |px: f32| cb.lo[0] + (px - full.left()) / w * (cb.hi[0] - cb.lo[0]);
    // Screen y grows downwards, latent z2 upwards.
    let y_at = |py: f32| cb.hi[1] - (py - full.top()) / h * (cb.hi[1] - cb.lo[1]);
    let radius = cb.radius_px * ppp;
    ViewUniform {
        lo: [x_at(shown.left()), y_at(shown.bottom())],
        hi: [x_at(shown.right()), y_at(shown.top())],
        radius: [2.0 * radius / shown.width().max(1.0), 2.0 * radius / shown.height().max(1.0)],
        alpha: 0.75,
        _pad: 0.0,
    }
}

impl CallbackTrait for ScatterCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<ScatterResources>() else {
            return Vec::new();
        };
        if res.instances.as_ref().is_none_or(|(v, _, _)| *v != self.version) {
            let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("scatter_points"),
                contents: bytemuck::cast_slice(&self.points),
                usage: wgpu::BufferUsages::VERTEX,
            });
            res.instances = Some((self.version, buffer, self.points.len() as u32));
        }
        let view = visible_view(self, screen.pixels_per_point, screen.size_in_pixels);
        queue.write_buffer(&res.uniform, 0, bytemuck::bytes_of(&view));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(res) = resources.get::<ScatterResources>() else {
            return;
        };
        let Some((_, buffer, count)) = &res.instances else {
            return;
        };
        if self.points.is_empty() {
            return;
        }
        pass.set_pipeline(&res.pipeline);
        pass.set_bind_group(0, &res.bind_group, &[]);
        pass.set_vertex_buffer(0, buffer.slice(..));
        pass.draw(0..6, 0..*count);
    }
}

/// Whether the scatter pipeline is installed (false under a non-wgpu renderer).
pub fn is_installed(render_state: Option<&RenderState>) -> bool {
    render_state.is_some_and(|rs| rs.renderer.read().callback_resources.contains::<ScatterResources>())
}

/// Adds the scatter to `painter` within `rect`.
pub fn paint(painter: &egui::Painter, rect: egui::Rect, callback: ScatterCallback) {
    painter.add(egui_wgpu::Callback::new_paint_callback(rect, callback));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(canvas: egui::Rect) -> ScatterCallback {
        ScatterCallback {
            points: Arc::new(Vec::new()),
            version: 0,
            lo: [-3.0, -3.0],
            hi: [3.0, 3.0],
            radius_px: 2.0,
            canvas,
        }
    }

    #[test]
    fn fully_visible_canvas_keeps_the_range() {
        let view = visible_view(
            &callback(egui::Rect::from_min_size(egui::pos2(10.0, 10.0), egui::vec2(300.0, 300.0))),
            1.0,
            [800, 600],
        );
        assert_eq!((view.lo, view.hi), ([-3.0, -3.0], [3.0, 3.0]));
        assert!((view.radius[0] - 4.0 / 300.0).abs() < 1e-6);
    }

    #[test]
    fn canvas_scrolled_above_the_window_shows_only_its_lower_part() {
        // The top third of the canvas is above the window: z2 from −3 to +1 remains.
        let view = visible_view(
            &callback(egui::Rect::from_min_size(egui::pos2(0.0, -100.0), egui::vec2(300.0, 300.0))),
            1.0,
            [800, 600],
        );
        assert!((view.hi[1] - 1.0).abs() < 1e-5 && (view.lo[1] + 3.0).abs() < 1e-5, "{view:?}");
        assert_eq!((view.lo[0], view.hi[0]), (-3.0, 3.0));
    }

    #[test]
    fn high_dpi_scales_consistently() {
        let canvas = egui::Rect::from_min_size(egui::pos2(500.0, 0.0), egui::vec2(300.0, 300.0));
        // 2 px per point on a 1400 px wide window: the right 100 points are cut off.
        let view = visible_view(&callback(canvas), 2.0, [1400, 1200]);
        assert!((view.hi[0] - 1.0).abs() < 1e-5, "{view:?}");
    }
}
