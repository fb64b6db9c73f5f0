//! `latent-studio serve`: the studio's own models over the two protocols
//! other tools speak, so another studio or any OpenAI / A1111 client can use
//! the machine that runs it. Loopback by default; any other address needs
//! an API key. Each connection has its own thread, capped in number; jobs
//! wait in bounded queues (a full queue answers 429); bodies, parameters,
//! heads and every wait have limits, so a slow or hostile client holds only
//! its own connection.

pub mod a1111_api;
pub mod answer;
pub mod http;
pub mod image_jobs;
pub mod openai_api;
pub mod text_jobs;

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use a1111_api::ImageLimits;
use answer::{ApiError, Dialect, write_json};
use http::{Connection, Head, HttpError, Timeouts};
use image_jobs::ImageQueue;
use text_jobs::TextQueue;

use crate::hub::config::Token;
use crate::io::manifest::{Family, discover};

/// What one server accepts.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections at once (more are answered 503 and closed).
    pub max_connections: usize,
    /// Jobs waiting per queue (text, images) besides the running one.
    pub queue: usize,
    /// Most new tokens one request may ask for.
    pub max_tokens: usize,
    /// Most steps, pixels per side and images per request.
    pub image: ImageLimits,
    /// Most bytes of a text request's body.
    pub text_body: usize,
    /// Most bytes of an image request's body (img2img carries an image).
    pub image_body: usize,
    /// Most body bytes buffered over all connections at once.
    pub body_budget: usize,
    /// Longest one job may run before it is stopped.
    pub job_time: Duration,
    pub timeouts: Timeouts,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            queue: 16,
            max_tokens: 4096,
            image: ImageLimits::default(),
            text_body: 1 << 20,
            image_body: 32 << 20,
            body_budget: 256 << 20,
            job_time: Duration::from_secs(600),
            timeouts: Timeouts::default(),
        }
    }
}

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    /// Required of every request when set (`Authorization: Bearer KEY`).
    pub api_key: Option<Token>,
    pub models_dir: PathBuf,
    pub limits: Limits,
}

/// What the connections share.
pub struct State {
    pub limits: Limits,
    api_key: Option<Token>,
    models_dir: PathBuf,
    pub text: TextQueue,
    pub images: ImageQueue,
    pub image_limits: ImageLimits,
    /// The checkpoint used when a request names none (A1111's `sd_model_checkpoint` option).
    current_image: Mutex<Option<String>>,
    /// The installed models, read at start and again by the listings and
    /// for a model not seen yet (not on every request).
    installed: Mutex<Installed>,
    connections: AtomicUsize,
    body_bytes: AtomicUsize,
}

/// Installed model ids by family.
#[derive(Clone, Debug, Default)]
pub struct Installed {
    pub text: Vec<String>,
    pub image: Vec<String>,
}

impl Installed {
    fn scan(models_dir: &std::path::Path) -> Self {
        let (manifests, _) = discover(models_dir);
        let ids = |family| manifests.iter().filter(|m| m.family == family).map(|m| m.id.clone()).collect();
        Self { text: ids(Family::Text), image: ids(Family::Diffusion) }
    }
}

impl State {
    /// The installed models read again (a model installed while serving appears).
    pub fn rescan(&self) -> Installed {
        let installed = Installed::scan(&self.models_dir);
        if let Ok(mut current) = self.installed.lock() {
            *current = installed.clone();
        }
        installed
    }

    fn installed(&self) -> Installed {
        self.installed.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Whether `id` is an installed model of the family `pick` chooses
    /// (the folder is read again only for an id not seen yet).
    pub fn knows(&self, id: &str, pick: fn(&Installed) -> &Vec<String>) -> bool {
        pick(&self.installed()).iter().any(|m| m == id) || pick(&self.rescan()).iter().any(|m| m == id)
    }

    /// The checkpoint a request without `sd_model_checkpoint` uses: the one
    /// set through `/sdapi/v1/options`, else the first installed.
    pub fn current_image_model(&self) -> Option<String> {
        let set = self.current_image.lock().ok().and_then(|c| c.clone());
        set.or_else(|| self.installed().image.into_iter().next())
    }

    /// The folder `<lora:NAME>` tags are looked up in.
    fn lora_dir(&self) -> PathBuf {
        self.models_dir.join("loras")
    }

    /// Names of the LoRA files in [`Self::lora_dir`].
    pub fn lora_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.lora_dir()) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names
    }
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Binds `host:port` (port 0 picks a free one). Refuses an address other
    /// than loopback without an API key.
    pub fn bind(options: ServeOptions) -> anyhow::Result<Self> {
        let addrs: Vec<SocketAddr> = (options.host.as_str(), options.port).to_socket_addrs()?.collect();
        anyhow::ensure!(!addrs.is_empty(), "{} resolves to no address", options.host);
        if options.api_key.is_none() && !addrs.iter().all(|a| a.ip().is_loopback()) {
            anyhow::bail!("{} is reachable from other machines: give --api-key (or serve on 127.0.0.1)", options.host);
        }
        let listener = TcpListener::bind(&addrs[..])?;
        let lora_dirs = vec![options.models_dir.join("loras")];
        let state = State {
            text: TextQueue::start(options.models_dir.clone(), options.limits.queue)?,
            images: ImageQueue::start(options.models_dir.clone(), lora_dirs, options.limits.queue)?,
            image_limits: options.limits.image,
            current_image: Mutex::new(None),
            installed: Mutex::new(Installed::scan(&options.models_dir)),
            limits: options.limits,
            api_key: options.api_key,
            models_dir: options.models_dir,
            connections: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
        };
        Ok(Self { listener, state: Arc::new(state) })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until the process ends.
    pub fn run(self) {
        for stream in self.listener.incoming() {
            let Ok(stream) = stream else { continue };
            let state = Arc::clone(&self.state);
            if state.connections.fetch_add(1, Ordering::SeqCst) >= state.limits.max_connections {
                state.connections.fetch_sub(1, Ordering::SeqCst);
                refuse(stream);
                continue;
            }
            let spawned = std::thread::Builder::new().name("serve-conn".into()).stack_size(256 << 10).spawn({
                let state = Arc::clone(&state);
                move || {
                    serve_connection(stream, &state);
                    state.connections.fetch_sub(1, Ordering::SeqCst);
                }
            });
            if spawned.is_err() {
                state.connections.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Too many connections: a short 503, never waiting on the client.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let error = ApiError::status(503, "too many connections; try again shortly".into());
    let _ = error.write(&mut stream, Dialect::OpenAi, false);
}

/// Requests on one connection, one after another, until it closes.
fn serve_connection(stream: TcpStream, state: &State) {
    let Ok(mut connection) = Connection::new(stream, state.limits.timeouts) else { return };
    loop {
        let head = match connection.read_head() {
            Ok(head) => head,
            Err(e) => return answer_http_error(&mut connection, &e),
        };
        let dialect = if head.path.starts_with("/sdapi") { Dialect::A1111 } else { Dialect::OpenAi };
        let keep_alive = head.keep_alive;
        let outcome = serve_request(&mut connection, state, &head);
        let kept = match outcome {
            Ok(()) => keep_alive,
            Err(RequestError::Http(e)) => return answer_http_error(&mut connection, &e),
            Err(RequestError::Close(e)) => {
                let _ = e.write(connection.stream(), dialect, false);
                return;
            }
            Err(RequestError::Api(e)) if e.gone => return,
            Err(RequestError::Api(e)) => e.write(connection.stream(), dialect, keep_alive).is_ok() && keep_alive,
        };
        if !kept {
            return;
        }
    }
}

fn answer_http_error(connection: &mut Connection, error: &HttpError) {
    if let Some(status) = error.status() {
        let _ = ApiError::status(status, error.to_string()).write(connection.stream(), Dialect::OpenAi, false);
    }
}

enum RequestError {
    /// The request could not be read.
    Http(HttpError),
    /// Refused before its body was read: answered, then the connection closes.
    Close(ApiError),
    /// Refused or failed after it was read: answered, the connection goes on.
    Api(ApiError),
}

impl From<ApiError> for RequestError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// Reads one request's body and answers it.
fn serve_request(connection: &mut Connection, state: &State, head: &Head) -> Result<(), RequestError> {
    if !authorized(state, head) {
        return Err(RequestError::Close(ApiError::unauthorized()));
    }
    let limit = if head.path.starts_with("/sdapi") { state.limits.image_body } else { state.limits.text_body };
    let reserved = head.content_length.min(limit);
    if state.body_bytes.fetch_add(reserved, Ordering::SeqCst) + reserved > state.limits.body_budget {
        state.body_bytes.fetch_sub(reserved, Ordering::SeqCst);
        let busy = "the server is receiving too much at once; try again shortly";
        return Err(RequestError::Close(ApiError::status(503, busy.into())));
    }
    let body = connection.read_body(head, limit);
    state.body_bytes.fetch_sub(reserved, Ordering::SeqCst);
    let body = body.map_err(RequestError::Http)?;
    let keep_alive = head.keep_alive;
    let out = connection.stream();
    match (head.method.as_str(), head.path.trim_end_matches('/')) {
        ("GET", "/v1/models") => write_json(out, 200, &openai_api::models(state), keep_alive),
        ("POST", "/v1/chat/completions") => return Ok(openai_api::complete(state, &body, true, out, keep_alive)?),
        ("POST", "/v1/completions") => return Ok(openai_api::complete(state, &body, false, out, keep_alive)?),
        ("GET", "/sdapi/v1/sd-models") => write_json(out, 200, &a1111_api::sd_models(state), keep_alive),
        ("GET", "/sdapi/v1/samplers") => write_json(out, 200, &a1111_api::samplers(), keep_alive),
        ("GET", "/sdapi/v1/loras") => write_json(out, 200, &a1111_api::loras(state), keep_alive),
        ("GET", "/sdapi/v1/progress") => write_json(out, 200, &a1111_api::progress(state), keep_alive),
        ("GET", "/sdapi/v1/options") => {
            let options = serde_json::json!({ "sd_model_checkpoint": state.current_image_model() });
            write_json(out, 200, &options, keep_alive)
        }
        ("POST", "/sdapi/v1/options") => {
            set_options(state, &body)?;
            write_json(out, 200, &serde_json::Value::Null, keep_alive)
        }
        ("POST", "/sdapi/v1/interrupt") => {
            state.images.interrupt();
            write_json(out, 200, &serde_json::Value::Null, keep_alive)
        }
        ("POST", "/sdapi/v1/txt2img") => {
            let answer = a1111_api::generate(state, &body, false, out)?;
            write_json(out, 200, &answer, keep_alive)
        }
        ("POST", "/sdapi/v1/img2img") => {
            let answer = a1111_api::generate(state, &body, true, out)?;
            write_json(out, 200, &answer, keep_alive)
        }
        ("GET" | "HEAD", "" | "/health") => {
            let health = serde_json::json!({
                "status": "ok", "text_waiting": state.text.waiting(), "images_waiting": state.images.waiting(),
            });
            write_json(out, 200, &health, keep_alive)
        }
        (_, path) => return Err(ApiError::not_found(path).into()),
    }
    .map_err(|e| ApiError::gone(e).into())
}

/// `POST /sdapi/v1/options`: only the checkpoint can be set.
fn set_options(state: &State, body: &[u8]) -> Result<(), ApiError> {
    let options: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::status(422, format!("the request body: {e}")))?;
    if let Some(model) = options.get("sd_model_checkpoint").and_then(|m| m.as_str()) {
        if !state.knows(model, |i| &i.image) {
            return Err(ApiError::status(404, format!("no checkpoint {model:?} here (see /sdapi/v1/sd-models)")));
        }
        if let Ok(mut current) = state.current_image.lock() {
            *current = Some(model.to_owned());
        }
    }
    Ok(())
}

/// Whether the request carries the key (compared in constant time), or none is needed.
fn authorized(state: &State, head: &Head) -> bool {
    let Some(key) = &state.api_key else { return true };
    let sent = head.header("authorization").unwrap_or("");
    let expected = key.bearer();
    sent.len() == expected.len() && sent.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
