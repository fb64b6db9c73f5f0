//! An Image view job on the A1111-compatible backends that have its
//! checkpoint: the least-loaded healthy one, the next if it fails. The
//! server's progress and live preview reach the view as a local run's do;
//! cancelling interrupts the server; the image is saved as local ones are,
//! with the server's infotext merged into its record.

use super::protocol::{ImageJob, WorkerEvent};
use super::run::EventSink;
use super::skeleton::JobError;
use crate::io::image_record::ImageRecord;
use crate::io::output::save_numbered;
use crate::io::png_meta::encode_png;
use crate::remote::a1111::{self, RemoteImageJob};
use crate::remote::pool::Pool;
use crate::spec::backend::short_url;
use crate::train::cancel::CancelToken;

/// Runs `spec` (whose model is the backends' checkpoint `model`) on `pool`.
pub fn generate_remote(
    pool: &Pool,
    job: super::JobId,
    spec: &ImageJob,
    model: &str,
    cancel: &CancelToken,
    events: &EventSink,
) -> Result<Option<WorkerEvent>, JobError> {
    let total = spec.request.steps;
    let init = match &spec.init {
        Some(path) => Some(
            image::open(path).map_err(|e| format!("cannot read the init image {}: {e}", path.display()))?.to_rgb8(),
        ),
        None => None,
    };
    let remote_job =
        RemoteImageJob { request: &spec.request, model: Some(model), init_image: init.as_ref(), batch: 1, loras: &[] };
    let mut on_attempt = |url: &str, _: usize| {
        let message = format!("on {}", short_url(url));
        events.send(WorkerEvent::Progress { job, step: 0, total, message });
    };
    let ((images, interrupted), url) = pool
        .run(Some(model), &mut on_attempt, &mut |server| {
            a1111::generate(server, &remote_job, &|| cancel.is_cancelled(), &mut |p| {
                let steps = if p.steps > 0 { p.steps } else { total };
                events.send(WorkerEvent::Progress { job, step: p.step, total: steps, message: String::new() });
                if let Some(image) = p.preview {
                    events.send(WorkerEvent::ImagePreview { job, step: p.step, image });
                }
            })
        })
        .map_err(|e| JobError(e.to_string()))?;
    if interrupted || cancel.is_cancelled() {
        return Ok(None);
    }
    let image = images.into_iter().next().ok_or_else(|| JobError(format!("{url} returned no image")))?;
    let init_name = spec.init.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let record =
        ImageRecord::from_server(spec.request.clone(), model.to_owned(), init_name, &url, image.infotext, image.seed);
    // The image reaches the panel even if it cannot be written.
    let saved = encode_png(&image.image, &record.chunks())
        .map_err(|e| e.to_string())
        .and_then(|png| save_numbered(&spec.output_dir, "image", "png", &png).map_err(|e| e.to_string()));
    Ok(Some(WorkerEvent::ImageDone { job, image: image.image, record: Box::new(record), noise: Vec::new(), saved }))
}
