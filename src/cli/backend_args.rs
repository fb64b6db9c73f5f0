//! `--backend URL` and `--backend-kind`: one command run on a remote server.

use clap::Args;

use crate::hub::config::Token;
use crate::remote::detect::detect;
use crate::remote::pool::Pool;
use crate::remote::{RemoteError, RemoteServer};
use crate::spec::backend::{BackendConfig, BackendKind};

/// The environment variable holding a backend's API key (a key on the
/// command line would show in the process list and the shell history).
pub const API_KEY_VAR: &str = "LATENT_STUDIO_API_KEY";

/// Where to run: here (no flag) or on a server.
#[derive(Args, Debug, Clone, Default)]
pub struct BackendArgs {
    /// Run on a remote server instead of this machine: its base URL
    /// (http://host:port). Repeat it to spread over several servers: the
    /// job runs on the least-loaded one with the model and moves to the next
    /// if that one fails. A key, if the servers need one, is read from
    /// LATENT_STUDIO_API_KEY.
    #[arg(long)]
    pub backend: Vec<String>,
    /// The server's protocol [default: asked of the server].
    #[arg(long, value_enum, requires = "backend")]
    pub backend_kind: Option<BackendKindArg>,
}

/// `--backend-kind` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKindArg {
    Openai,
    A1111,
}

impl BackendArgs {
    /// The servers given with `--backend`, as a pool of `wanted`'s kind
    /// whose health was just checked; `None` without the flag.
    pub fn pool(&self, wanted: BackendKind) -> anyhow::Result<Option<Pool>> {
        if self.backend.is_empty() {
            return Ok(None);
        }
        let servers = self
            .backend
            .iter()
            .map(|url| {
                let server = connect(url, self.backend_kind, wanted)?;
                Ok((BackendConfig { kind: wanted, url: server.base().to_owned() }, server))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pool = Pool::new(wanted, servers);
        pool.check_all();
        Ok(Some(pool))
    }
}

/// The server at `url` with the key from the environment. Its protocol is
/// `kind` if given, else asked of the server; it must be `wanted`.
pub fn connect(url: &str, kind: Option<BackendKindArg>, wanted: BackendKind) -> anyhow::Result<RemoteServer> {
    let key = std::env::var(API_KEY_VAR).ok().and_then(|k| Token::parse(&k));
    let server = RemoteServer::new(url, key)?;
    let kinds = match kind {
        Some(BackendKindArg::Openai) => vec![BackendKind::OpenAi],
        Some(BackendKindArg::A1111) => vec![BackendKind::A1111],
        // A server that cannot be reached now is kept: the pool pauses it and another may serve.
        None => match detect(&server) {
            Err(RemoteError::Connect { .. }) => vec![wanted],
            other => other?,
        },
    };
    let what = match wanted {
        BackendKind::OpenAi => "an OpenAI-compatible text server",
        BackendKind::A1111 => "an A1111-compatible image server",
        BackendKind::Local => "this machine",
    };
    anyhow::ensure!(kinds.contains(&wanted), "{} is not {what}", server.base());
    Ok(server)
}
