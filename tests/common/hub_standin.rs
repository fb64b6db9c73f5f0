//! A stand-in for the Hugging Face Hub on 127.0.0.1, speaking the shapes of
//! its public API as `huggingface_hub` sees them:
//!
//! - `GET /api/models/{repo}[/revision/{rev}]?blobs=true`: the repo
//!   description (`sha`, `gated`, `cardData.license`, `siblings` with
//!   `size`, `blobId` and, for LFS files, `lfs.sha256`);
//! - `HEAD|GET /{repo}/resolve/{rev}/{path}`: small (git) files answered
//!   directly with their blob id as ETag; LFS files redirected (302) to a
//!   second port standing for the CDN, with `X-Linked-Etag`/`X-Linked-Size`;
//! - the CDN: `GET /cdn/{sha256}` with `Range` (206, `Content-Range`);
//! - errors with `X-Error-Code` (`RepoNotFound`, `EntryNotFound`,
//!   `RevisionNotFound`, `GatedRepo` as a 401 without the right token).
//!
//! Faults on demand: a connection cut after some bytes, bytes that do not
//! match the advertised checksum, `Range` ignored. Every request is logged.
//! Used by the tests and, through `examples/hub_standin.rs`, the benchmark.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha1::Digest as _;

/// The token the stand-in accepts for gated repos.
pub const GOOD_TOKEN: &str = "hf_standin_good_token";

#[derive(Clone)]
pub struct StandInFile {
    pub path: String,
    pub bytes: Arc<Vec<u8>>,
    /// Stored in LFS (weights): served from the CDN, checked by sha256.
    pub lfs: bool,
    /// Computed once: the benchmark serves a 1 GiB file.
    sha256: String,
    git_id: String,
}

impl StandInFile {
    pub fn new(path: &str, bytes: Vec<u8>, lfs: bool) -> Self {
        let sha256 = hex(&sha2::Sha256::digest(&bytes));
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", bytes.len()).as_bytes());
        h.update(&bytes);
        let git_id = hex(&h.finalize());
        Self { path: path.into(), bytes: Arc::new(bytes), lfs, sha256, git_id }
    }

    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }

    pub fn git_id(&self) -> String {
        self.git_id.clone()
    }

    fn etag(&self) -> String {
        if self.lfs { self.sha256() } else { self.git_id() }
    }
}

#[derive(Clone)]
pub struct StandInRepo {
    pub id: String,
    pub commit: String,
    /// Branches besides `main` that resolve to `commit`.
    pub files: Vec<StandInFile>,
    pub gated: bool,
    pub license: String,
}

/// Faults to inject (shared with the serving threads; change them any time).
#[derive(Default)]
pub struct Faults {
    /// Cut the connection after this many body bytes, this many times.
    pub cut_after: Option<(u64, u32)>,
    /// Serve these paths with their last byte flipped (the listing keeps the true sha256).
    pub corrupt: Vec<String>,
    /// Answer `Range` requests with the whole file (200).
    pub ignore_range: bool,
    /// Stall (sleep) this long before each CDN body chunk of 1 MiB (to watch progress).
    pub slow_ms: u64,
}

pub struct StandIn {
    pub endpoint: String,
    pub cdn: String,
    pub faults: Arc<Mutex<Faults>>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl StandIn {
    /// Listens on two free ports of 127.0.0.1 (the Hub and its CDN), serving `repos`.
    pub fn start(repos: Vec<StandInRepo>) -> Self {
        Self::start_on(repos, 0)
    }

    pub fn start_on(repos: Vec<StandInRepo>, port: u16) -> Self {
        let hub = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", hub.local_addr().unwrap());
        let cdn_url = format!("http://{}", cdn.local_addr().unwrap());
        let state = Arc::new(State {
            repos,
            cdn: cdn_url.clone(),
            faults: Arc::new(Mutex::new(Faults::default())),
            log: Arc::new(Mutex::new(Vec::new())),
        });
        for listener in [hub, cdn] {
            let state = state.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = state.clone();
                    std::thread::spawn(move || serve(stream, &state));
                }
            });
        }
        Self { endpoint, cdn: cdn_url, faults: state.faults.clone(), log: state.log.clone() }
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

struct State {
    repos: Vec<StandInRepo>,
    cdn: String,
    faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<String>>>,
}

struct Request {
    method: String,
    target: String,
    range_from: Option<u64>,
    authorization: Option<String>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (mut range_from, mut authorization) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "range" => {
                range_from = value.trim().strip_prefix("bytes=")?.split('-').next()?.parse().ok();
            }
            "authorization" => authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    Some(Request { method, target, range_from, authorization })
}

fn serve(stream: TcpStream, state: &State) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader) {
        let auth = if request.authorization.is_some() { " auth" } else { "" };
        let range = request.range_from.map(|r| format!(" from {r}")).unwrap_or_default();
        state.log.lock().unwrap().push(format!("{} {}{range}{auth}", request.method, request.target));
        if !respond(&mut stream, &request, state) {
            return;
        }
    }
}

/// Writes a head (and no body); `false` to close the connection.
fn head(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], length: u64) -> bool {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    stream.write_all(text.as_bytes()).is_ok()
}

fn error(stream: &mut TcpStream, status: &str, code: &str, is_head: bool) -> bool {
    let body = format!("{{\"error\": \"{code}\"}}");
    let ok =
        head(stream, status, &[("X-Error-Code", code.into()), ("X-Error-Message", code.into())], body.len() as u64);
    ok && (is_head || stream.write_all(body.as_bytes()).is_ok())
}

fn respond(stream: &mut TcpStream, request: &Request, state: &State) -> bool {
    let is_head = request.method == "HEAD";
    let path = request.target.split('?').next().unwrap_or("");
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let file = state.repos.iter().flat_map(|r| &r.files).find(|f| f.lfs && f.sha256() == sha);
        return match file {
            Some(file) => send_bytes(stream, request, state, file),
            None => error(stream, "404 Not Found", "EntryNotFound", is_head),
        };
    }
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let (repo_id, revision) = match rest.split_once("/revision/") {
            Some((repo, rev)) => (repo, unquote(rev)),
            None => (rest, "main".to_owned()),
        };
        let Some(repo) = state.repos.iter().find(|r| r.id == repo_id) else {
            return error(stream, "404 Not Found", "RepoNotFound", is_head);
        };
        if revision != "main" && revision != repo.commit {
            return error(stream, "404 Not Found", "RevisionNotFound", is_head);
        }
        let body = repo_json(repo);
        return head(stream, "200 OK", &[("Content-Type", "application/json".into())], body.len() as u64)
            && stream.write_all(body.as_bytes()).is_ok();
    }
    let Some((repo_id, rest)) = state
        .repos
        .iter()
        .find_map(|r| path.strip_prefix(&format!("/{}/resolve/", r.id)).map(|rest| (r.id.clone(), rest.to_owned())))
    else {
        return error(stream, "401 Unauthorized", "RepoNotFound", is_head);
    };
    let repo = state.repos.iter().find(|r| r.id == repo_id).unwrap();
    if repo.gated && request.authorization.as_deref() != Some(&format!("Bearer {GOOD_TOKEN}")) {
        return error(stream, "401 Unauthorized", "GatedRepo", is_head);
    }
    let (revision, file_path) = rest.split_once('/').unwrap_or((&rest, ""));
    if revision != "main" && revision != repo.commit {
        return error(stream, "404 Not Found", "RevisionNotFound", is_head);
    }
    let file_path = unquote(file_path);
    let Some(file) = repo.files.iter().find(|f| f.path == file_path) else {
        return error(stream, "404 Not Found", "EntryNotFound", is_head);
    };
    let common = [("X-Repo-Commit", repo.commit.clone())];
    if file.lfs {
        let headers = [
            common[0].clone(),
            ("X-Linked-Etag", format!("\"{}\"", file.sha256())),
            ("X-Linked-Size", file.bytes.len().to_string()),
            ("Location", format!("{}/cdn/{}", state.cdn, file.sha256())),
        ];
        return head(stream, "302 Found", &headers, 0);
    }
    let headers = [common[0].clone(), ("ETag", format!("\"{}\"", file.git_id()))];
    if is_head {
        return head(stream, "200 OK", &headers, file.bytes.len() as u64);
    }
    let mut body = file.bytes.to_vec();
    if state.faults.lock().unwrap().corrupt.contains(&file.path)
        && let Some(last) = body.last_mut()
    {
        *last ^= 0xff;
    }
    head(stream, "200 OK", &headers, body.len() as u64) && stream.write_all(&body).is_ok()
}

fn send_bytes(stream: &mut TcpStream, request: &Request, state: &State, file: &StandInFile) -> bool {
    let (cut, corrupt, ignore_range, slow_ms) = {
        let mut faults = state.faults.lock().unwrap();
        let cut = match &mut faults.cut_after {
            Some((after, times)) if *times > 0 => {
                *times -= 1;
                Some(*after)
            }
            _ => None,
        };
        (cut, faults.corrupt.contains(&file.path), faults.ignore_range, faults.slow_ms)
    };
    let total = file.bytes.len() as u64;
    let from = request.range_from.filter(|_| !ignore_range).unwrap_or(0).min(total);
    let mut headers = vec![("ETag", format!("\"{}\"", file.sha256())), ("Accept-Ranges", "bytes".into())];
    let status = if request.range_from.is_some() && !ignore_range {
        headers.push(("Content-Range", format!("bytes {from}-{}/{total}", total.saturating_sub(1))));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    if !head(stream, status, &headers, total - from) || request.method == "HEAD" {
        return request.method == "HEAD";
    }
    // Copied only when it is to be corrupted: the benchmark serves 1 GiB from here.
    let corrupted;
    let mut body: &[u8] = &file.bytes[from as usize..];
    if corrupt && !body.is_empty() {
        let mut copy = body.to_vec();
        if let Some(last) = copy.last_mut() {
            *last ^= 0xff;
        }
        corrupted = copy;
        body = &corrupted;
    }
    let end = cut.map_or(body.len(), |c| (c as usize).min(body.len()));
    for chunk in body[..end].chunks(1 << 20) {
        if slow_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(slow_ms));
        }
        if stream.write_all(chunk).is_err() {
            return false;
        }
    }
    if cut.is_some() {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return false;
    }
    true
}

fn repo_json(repo: &StandInRepo) -> String {
    let siblings: Vec<serde_json::Value> = repo
        .files
        .iter()
        .map(|f| {
            let mut entry = serde_json::json!({"rfilename": f.path, "size": f.bytes.len(), "blobId": f.git_id()});
            if f.lfs {
                entry["lfs"] = serde_json::json!({"sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134});
            }
            entry
        })
        .collect();
    serde_json::json!({
        "_id": "0", "id": repo.id, "modelId": repo.id, "sha": repo.commit, "private": false,
        "gated": if repo.gated { serde_json::json!("auto") } else { serde_json::json!(false) },
        "disabled": false, "downloads": 0, "likes": 0, "tags": [format!("license:{}", repo.license)],
        "cardData": {"license": repo.license}, "siblings": siblings,
        "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
    })
    .to_string()
}

fn unquote(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A small repo like a quantized chat model's: a README card, a config and two GGUF files.
pub fn gguf_repo(id: &str) -> StandInRepo {
    let pseudo =
        |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>();
    StandInRepo {
        id: id.into(),
        commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".into(),
        files: vec![
            StandInFile::new(".gitattributes", b"*.gguf filter=lfs diff=lfs merge=lfs -text\n".to_vec(), false),
            StandInFile::new("README.md", b"---\nlicense: apache-2.0\nbase_model: x\n---\n# A model\n".to_vec(), false),
            StandInFile::new("model-Q4_K_M.gguf", pseudo(3 << 20, 7), true),
            StandInFile::new("model-Q8_0.gguf", pseudo(5 << 20, 11), true),
        ],
        gated: false,
        license: "apache-2.0".into(),
    }
}

/// Runs `script` with Python's `huggingface_hub` (the version
/// `scripts/fetch-hub-python.sh` installs) and `env`; returns its standard output.
pub fn hub_python(script: &str, env: &[(&str, &str)]) -> String {
    let site = std::env::var_os("LATENT_STUDIO_HUB_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/latent-studio/hub-python")
    });
    assert!(
        site.join("huggingface_hub").is_dir(),
        "no huggingface_hub at {}: run scripts/fetch-hub-python.sh",
        site.display()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("PYTHONPATH", &site)
        .env_remove("HF_TOKEN")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
