//! A diffusion model's latent as something to play with: its starting noise
//! and its text conditioning (the settings are plain data in
//! `spec::latent_control`). `variation` is A1111's variation seed; `pad`
//! blends several (prompt, seed) points by a cursor's position; `concepts`
//! moves the conditioning along the difference of two prompts; `directions`
//! moves the noise along fixed orthonormal directions; `scene`
//! encodes each prompt once and makes pad images and travel frames;
//! `travel` renders a whole travel and writes it as GIF or APNG. Each image
//! they make is an ordinary generation from a blended noise and conditioning (`DiffusionPipeline::generate_conditioned`).

pub mod concepts;
pub mod directions;
pub mod pad;
pub mod scene;
pub mod travel;
pub mod variation;
