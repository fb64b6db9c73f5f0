//! `serve`: the studio's models for other machines, over the OpenAI and
//! A1111 protocols.

use std::path::Path;

use clap::Args;

use crate::hub::config::Token;
use crate::serve::{Limits, ServeOptions, Server};

/// `serve` flags.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0: any free one, printed at start).
    #[arg(long, default_value_t = 7860)]
    pub port: u16,
    /// Require this key of every request (Authorization: Bearer KEY); also read
    /// from LATENT_STUDIO_SERVE_KEY, which keeps it out of the process list.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Jobs that may wait per queue (text, images); more are answered 429.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Most new tokens one request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// Most denoising steps one image request may ask for.
    #[arg(long, default_value_t = 150)]
    pub max_steps: usize,
    /// Largest image side one request may ask for, in pixels.
    #[arg(long, default_value_t = 1024)]
    pub max_side: usize,
    /// Longest one job may run, in seconds, before it is stopped.
    #[arg(long, default_value_t = 600)]
    pub job_seconds: u64,
    /// Most connections open at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
}

/// Binds, says where, and serves until killed.
pub fn serve(models_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let key = args.api_key.or_else(|| std::env::var("LATENT_STUDIO_SERVE_KEY").ok());
    let limits = Limits {
        queue: args.queue.max(1),
        max_tokens: args.max_tokens.max(1),
        max_connections: args.max_connections.max(1),
        job_time: std::time::Duration::from_secs(args.job_seconds.max(1)),
        image: crate::serve::a1111_api::ImageLimits {
            max_steps: args.max_steps.max(1),
            max_side: args.max_side.max(64),
            ..Default::default()
        },
        ..Limits::default()
    };
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        api_key: key.as_deref().and_then(Token::parse),
        models_dir: models_dir.to_owned(),
        limits,
    };
    let server = Server::bind(options)?;
    // Tests and scripts read this line to find the port.
    println!("serving on http://{}", server.local_addr()?);
    server.run();
    Ok(())
}
