//! Headless subcommands: every feature of the studio from the command line,
//! through the same models and pipelines as the GUI.

mod backend_args;
mod bench;
mod bench_conv;
mod bench_diffusion;
mod bench_gan;
mod bench_history;
mod bench_hub;
mod bench_pad;
mod bench_serve;
mod bench_text;
mod bench_train;
mod directions;
mod generate;
mod generate_remote;
mod history;
mod hub;
mod latent;
mod latent_control;
mod library;
mod model_args;
mod outliers;
mod serve;
mod text;
mod train;
mod train_args;
mod train_autoencoder;
mod train_diffusion;
mod train_gan;
mod train_text;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::latent::interpolate::Interpolation;

/// Command-line interface. No subcommand opens the GUI.
#[derive(Parser, Debug)]
#[command(name = "latent-studio", version, about = "A local-first studio for generative models")]
pub struct Cli {
    /// Folder that holds one sub-folder per model (default: $LATENT_STUDIO_MODELS, ./models, or the source tree's).
    #[arg(long, global = true)]
    pub models_dir: Option<PathBuf>,
    /// What to do; none opens the GUI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Headless subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the installed models.
    Models {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decode seeded random latents into an image (a grid when --count > 1).
    Sample {
        /// Model id (see `latent-studio models`).
        #[arg(long)]
        model: String,
        /// Seed of the latent (the same seed always gives the same latent).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of images; seeds are SEED, SEED+1, …
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Truncation ψ: latents pulled towards the mean (GANs; 1 = none, 0 = the mean image).
        #[arg(long, default_value_t = 1.0)]
        truncation: f32,
        /// Integer upscale factor for the saved file.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        scale: u32,
        /// PNG file to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Decode one given latent vector.
    Decode {
        /// Model id (see `latent-studio models`).
        #[arg(long)]
        model: String,
        /// Comma-separated values, e.g. "0.5,-1.2".
        #[arg(long, allow_hyphen_values = true)]
        latent: String,
        /// Integer upscale factor for the saved file (1–64).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        scale: u32,
        /// File to create (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode an image and print its latent (posterior mean) as JSON.
    Encode {
        /// Model id (see `latent-studio models`).
        #[arg(long)]
        model: String,
        /// Image file to encode (PNG, JPEG, GIF, …).
        #[arg(long)]
        image: PathBuf,
    },
    /// Interpolate between two seeds' latents; PNG strip or animated GIF.
    Interpolate {
        /// Model id (see `latent-studio models`).
        #[arg(long)]
        model: String,
        /// Seed of the start latent.
        #[arg(long)]
        from_seed: u64,
        /// Seed of the end latent.
        #[arg(long)]
        to_seed: u64,
        /// Number of frames, endpoints included.
        #[arg(long, default_value_t = 8)]
        frames: usize,
        /// lerp (straight line) or slerp (great circle).
        #[arg(long, default_value = "slerp")]
        method: Interpolation,
        /// Integer upscale factor for the saved file (1–64).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
        scale: u32,
        /// FILE.png for a strip, FILE.gif for a looping animation.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compute a GAN's principal latent directions (GANSpace) and store them next to its weights.
    Directions {
        /// Model id of a GAN.
        #[arg(long)]
        model: String,
        /// Directions to keep.
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Latents sampled to find them.
        #[arg(long, default_value_t = 5000)]
        samples: usize,
        /// Seed of those latents.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also write a PNG sweeping seeds 0–2 along each direction from −3 to 3 (never overwritten).
        #[arg(long)]
        sweep: Option<PathBuf>,
    },
    /// Generate text with a language model, streamed to stdout.
    Text {
        #[command(flatten)]
        model: text::ModelChoice,
        /// The prompt (raw text to continue, or with --chat the user's message).
        #[arg(long)]
        prompt: String,
        /// Wrap the prompt in the model's chat template (instruct models).
        #[arg(long)]
        chat: bool,
        /// With --chat: the system prompt.
        #[arg(long)]
        system: Option<String>,
        /// With --chat: a conversation file (JSON); its turns are the context,
        /// and the prompt and the answer are appended (the file is created if missing).
        #[arg(long)]
        conversation: Option<PathBuf>,
        /// Most new tokens [default: 256, or the conversation's].
        #[arg(long)]
        max_tokens: Option<usize>,
        /// Stop when the output contains this text (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        #[command(flatten)]
        sampling: text::SamplingArgs,
        #[command(flatten)]
        backend: backend_args::BackendArgs,
        /// Print one JSON object (text, token ids, timings) at the end instead of streaming.
        #[arg(long)]
        json: bool,
    },
    /// Print the token ids and pieces of a text.
    Tokenize {
        #[command(flatten)]
        model: text::ModelChoice,
        /// The text to split.
        #[arg(long)]
        text: String,
        /// Apply the chat template first (as `text --chat` does).
        #[arg(long)]
        chat: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Text-to-image (or image-to-image) with a diffusion model.
    Generate(Box<generate::GenerateArgs>),
    /// One image from the latent pad: prompts and seeds at points of a
    /// square, blended at the cursor (with concept sliders).
    Pad(Box<latent_control::PadArgs>),
    /// An animation (GIF or APNG) travelling through keyframes of prompt and seed.
    Travel(Box<latent_control::TravelArgs>),
    /// The outputs in a folder, newest first, found by prompt, model, seed or date.
    History(history::HistoryArgs),
    /// Print the generation settings stored in a PNG (ours or A1111-style).
    Info {
        /// The image.
        file: PathBuf,
        /// Print our JSON record instead of the A1111 text.
        #[arg(long)]
        json: bool,
    },
    /// List the models in folders (an A1111/Forge or ComfyUI install, or any
    /// folder) by kind, with sizes and A1111's hashes.
    Library {
        /// A folder to list; repeatable.
        #[arg(long, required = true)]
        dir: Vec<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rank a folder's images by how unusual a VAE finds them (negative ELBO), most unusual first.
    Outliers {
        /// A VAE's model id.
        #[arg(long)]
        model: String,
        /// The folder of images (PNG, JPEG, WebP, GIF).
        #[arg(long)]
        data: PathBuf,
        /// How other shapes become the model's square.
        #[arg(long, value_enum, default_value = "crop")]
        fit: crate::io::image_folder::Fit,
        /// Rows printed (and heat maps written).
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Print every image's score as JSON.
        #[arg(long)]
        json: bool,
        /// Write a per-pixel error heat map of each of the top images into this folder.
        #[arg(long)]
        heatmaps: Option<PathBuf>,
    },
    /// Add noise to an image, then encode and decode it with a VAE (what its decoder cannot draw is left out).
    Denoise {
        /// A VAE's model id.
        #[arg(long)]
        model: String,
        /// The image (PNG, JPEG, WebP, GIF), fitted to the model's square.
        #[arg(long)]
        image: PathBuf,
        /// Standard deviation of the added Gaussian noise, in pixel units (0 adds none).
        #[arg(long, default_value_t = 0.2)]
        noise: f32,
        /// Seed of the noise.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How other shapes become the model's square.
        #[arg(long, value_enum, default_value = "crop")]
        fit: crate::io::image_folder::Fit,
        /// Integer upscale of the saved images.
        #[arg(long, default_value_t = 4)]
        scale: u32,
        /// PNG to create with the denoised image (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Also write input | noisy | denoised side by side here.
        #[arg(long)]
        strip: Option<PathBuf>,
    },
    /// Download a model from the Hugging Face Hub into its shared cache
    /// (HF_ENDPOINT, HF_HUB_CACHE, HF_TOKEN and HF_HUB_OFFLINE apply).
    Pull {
        /// Repo id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct-GGUF.
        repo: String,
        /// A file of the repo; repeatable (default: the model's files, Q4_K_M for GGUF repos).
        #[arg(long)]
        file: Vec<String>,
        /// Branch, tag or commit.
        #[arg(long, default_value = "main")]
        revision: String,
    },
    /// Serve the studio's models over the OpenAI (/v1) and A1111 (/sdapi/v1)
    /// protocols, to other studios and any client of either.
    Serve(Box<serve::ServeArgs>),
    /// Train a model.
    Train {
        #[command(subcommand)]
        what: train::TrainCommand,
    },
    /// Measure performance and print a table.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

/// Runs a headless command.
pub fn run(command: Command, models_dir: PathBuf) -> anyhow::Result<()> {
    // Say where the heavy commands run (the GUI shows it in its status bar).
    if matches!(
        command,
        Command::Models { .. }
            | Command::Generate(_)
            | Command::Pad(_)
            | Command::Travel(_)
            | Command::Train { .. }
            | Command::Bench { .. }
    ) {
        eprintln!("device: {}", crate::nn::device_label(&crate::nn::default_device()));
    }
    // On a pool thread, parallel loops keep one half of their work instead of
    // handing all of it to other threads and sleeping.
    rayon::scope(|_| run_here(command, models_dir))
}

fn run_here(command: Command, models_dir: PathBuf) -> anyhow::Result<()> {
    match command {
        Command::Models { json } => latent::list_models(&models_dir, json),
        Command::Sample { model, seed, count, truncation, scale, out } => {
            latent::sample(&models_dir, &model, &latent::SampleRun { seed, count, truncation, scale }, &out)
        }
        Command::Decode { model, latent, scale, out } => latent::decode(&models_dir, &model, &latent, scale, &out),
        Command::Encode { model, image } => latent::encode(&models_dir, &model, &image),
        Command::Interpolate { model, from_seed, to_seed, frames, method, scale, out } => {
            latent::interpolate(&models_dir, &model, (from_seed, to_seed), frames, method, scale, &out)
        }
        Command::Directions { model, count, samples, seed, sweep } => {
            directions::directions(&models_dir, &model, count, samples, seed, sweep.as_deref())
        }
        Command::Text { model, prompt, chat, system, conversation, max_tokens, stop, sampling, backend, json } => {
            let spec = text::TextRun { prompt, chat, max_tokens, stop, system, conversation, json };
            text::text(&models_dir, &model, &backend, spec, &sampling)
        }
        Command::Tokenize { model, text: input, chat, json } => text::tokenize(&models_dir, &model, &input, chat, json),
        Command::Generate(args) => generate::generate(&models_dir, *args),
        Command::Pad(args) => latent_control::pad(&models_dir, *args),
        Command::Travel(args) => latent_control::travel(&models_dir, *args),
        Command::History(args) => history::history(args),
        Command::Info { file, json } => generate::info(&file, json),
        Command::Library { dir, json } => library::run(&dir, json),
        Command::Outliers { model, data, fit, top, json, heatmaps } => {
            let run =
                outliers::OutlierRun { model: &model, data: &data, fit, top, json, heatmaps: heatmaps.as_deref() };
            outliers::outliers(&models_dir, &run)
        }
        Command::Denoise { model, image, noise, seed, fit, scale, out, strip } => {
            let run = outliers::DenoiseRun {
                model: &model,
                image: &image,
                noise,
                seed,
                fit,
                scale,
                out: &out,
                strip: strip.as_deref(),
            };
            outliers::denoise(&models_dir, &run)
        }
        Command::Pull { repo, file, revision } => hub::run_pull(&repo, &file, &revision),
        Command::Serve(args) => serve::serve(&models_dir, *args),
        Command::Train { what } => train::run(what, &models_dir),
        Command::Bench { what } => bench::run(what, &models_dir),
    }
}
