//! Real servers started on 127.0.0.1 for the remote-backend tests, killed
//! when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv `scripts/fetch-models.sh` compiles llama.cpp into and
/// `scripts/fetch-server-python.sh` adds the server and the openai client to.
pub fn llama_venv_python() -> PathBuf {
    let venv = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/latent-studio/llama-venv");
    let python = venv.join("bin/python");
    assert!(
        venv.join(".server-python-1").is_file(),
        "no llama-cpp-python server in {}: run scripts/fetch-models.sh, then scripts/fetch-server-python.sh",
        venv.display()
    );
    python
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process serving HTTP on 127.0.0.1, killed on drop.
pub struct Served {
    pub child: Child,
    pub url: String,
    log: PathBuf,
}

impl Served {
    /// Starts `command` (which must listen on `port`) and waits until `ready_path` answers 200.
    pub fn start(mut command: Command, port: u16, ready_path: &str, log: PathBuf) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child = command.stdout(out.try_clone().unwrap()).stderr(out).stdin(Stdio::null()).spawn().unwrap();
        let mut served = Self { child, url: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("the server exited ({status}) before answering:\n{}", served.log_text());
            }
            if ureq::get(format!("{}{ready_path}", served.url)).call().is_ok_and(|r| r.status() == 200) {
                return served;
            }
            assert!(Instant::now() < deadline, "the server did not answer in 120 s:\n{}", served.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the server printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server now (a backend dying).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// llama-cpp-python's OpenAI-compatible server on `gguf`, two threads.
pub fn llama_server(gguf: &Path, log_dir: &Path) -> Served {
    let port = free_port();
    let mut command = Command::new(llama_venv_python());
    command.args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_ctx", "2048", "--n_threads", "2"]);
    command.args(["--verbose", "false", "--port", &port.to_string(), "--model"]).arg(gguf);
    Served::start(command, port, "/v1/models", log_dir.join("llama-server.log"))
}

/// stable-diffusion.cpp's `sd-server` (`scripts/fetch-sd-server.sh` builds it) on a diffusers folder.
pub fn sd_server(model: &Path, log_dir: &Path) -> Served {
    let binary =
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/latent-studio/sd-server/bin/sd-server");
    assert!(binary.is_file(), "no sd-server at {}: run scripts/fetch-sd-server.sh", binary.display());
    let port = free_port();
    let mut command = Command::new(binary);
    command.args(["--listen-ip", "127.0.0.1", "--listen-port", &port.to_string(), "-t", "2", "-m"]).arg(model);
    Served::start(command, port, "/sdapi/v1/sd-models", log_dir.join("sd-server.log"))
}

/// `latent-studio serve` as a process on a free port, killed on drop.
pub struct ServeProcess(pub std::process::Child, pub String);

impl ServeProcess {
    pub fn start(flags: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latent-studio"));
        command.args(["serve", "--port", "0"]).args(flags).env("LATENT_STUDIO_MODELS", super::shipped_models());
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("serving on ").expect("the address line").to_owned();
        Self(child, url)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
