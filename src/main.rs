//! The `latent-studio` binary: the GUI without arguments, headless commands with.

use std::process::ExitCode;

use clap::Parser;
use latent_studio::cli::{Cli, run};
use latent_studio::io::manifest::default_models_dir;

fn main() -> ExitCode {
    latent_studio::runtime::tune();
    let cli = Cli::parse();
    let models_dir = cli.models_dir.clone().unwrap_or_else(default_models_dir);
    let result = match cli.command {
        Some(command) => run(command, models_dir),
        None => latent_studio::app::run_gui(models_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
