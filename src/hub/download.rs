//! Downloading one file into the hub cache: resumed from a partial blob
//! (`blobs/{etag}.incomplete`, kept across pauses and restarts) with a
//! `Range` request, hashed while it streams, checked against the Hub's
//! sha256 (or git blob id for small non-LFS files), and only then renamed
//! to its blob and linked into the snapshot, so no half file is ever where
//! a model is expected. A dropped connection resumes by itself.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::Digest as _;

use super::cache::{RepoCache, RepoId, check_repo_path};
use super::client::FileMetadata;
use super::http::{Hub, HubError, Method, header};

/// Bytes read per write (and per progress report).
const CHUNK: usize = 1 << 20;
/// Connection drops survived per file before giving up.
const MAX_RESUMES: u32 = 5;

/// What the caller wants after each chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop, keeping the partial blob to resume later.
    Pause,
    /// Stop and delete the partial blob.
    Cancel,
}

/// How a download ended (errors aside).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file, in its snapshot folder.
    Done(PathBuf),
    Paused,
    Cancelled,
}

/// One file to fetch.
#[derive(Clone, Debug)]
pub struct FileRequest<'a> {
    pub repo: &'a RepoId,
    pub revision: &'a str,
    pub path: &'a str,
    /// The sha256 the repo description lists (LFS files); otherwise the
    /// ETag is trusted as the checksum when it is one.
    pub sha256: Option<&'a str>,
}

/// The checksum a finished blob must have.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expected {
    Sha256(String),
    /// Git's blob id: sha1 of `blob {len}\0` and the content.
    GitSha1(String),
    None,
}

impl Expected {
    fn of(sha256: Option<&str>, etag: &str) -> Self {
        match sha256 {
            Some(sha) => Expected::Sha256(sha.to_ascii_lowercase()),
            None if etag.len() == 64 => Expected::Sha256(etag.to_owned()),
            None if etag.len() == 40 => Expected::GitSha1(etag.to_owned()),
            None => Expected::None,
        }
    }
}

/// Fetches `file` (or finds it in the cache), reporting `(bytes done, total)`
/// to `progress` after each chunk; its answer pauses or cancels.
pub fn fetch_file(
    hub: &Hub,
    file: &FileRequest<'_>,
    progress: &mut dyn FnMut(u64, Option<u64>) -> Flow,
) -> Result<Outcome, HubError> {
    check_repo_path(file.path).map_err(|e| HubError::File { path: file.path.to_owned(), detail: e.to_string() })?;
    let cache = RepoCache::new(&hub.config().cache_dir, file.repo);
    let cached = || cache.cached_file(file.revision, file.path);
    if hub.config().offline {
        return cached()
            .map(Outcome::Done)
            .ok_or_else(|| HubError::Offline { what: format!("{}/{}", file.repo, file.path) });
    }
    let meta = match hub.file_metadata(file.repo, file.revision, file.path) {
        Ok(meta) => meta,
        // As huggingface_hub: an unreachable server falls back to the cache.
        Err(e @ HubError::Connect { .. }) => return cached().map(Outcome::Done).ok_or(e),
        Err(e) => return Err(e),
    };
    let cache_err = |e: io::Error| HubError::file(cache.root(), &e);
    cache.write_ref(file.revision, &meta.commit).map_err(cache_err)?;
    let blob = cache.blob(&meta.etag);
    let _lock = lock(hub, file.repo, &meta.etag)?;
    if !blob.is_file() {
        match download_blob(hub, file, &meta, &cache, progress)? {
            Outcome::Done(_) => {}
            other => return Ok(other),
        }
    }
    let link = cache.link_snapshot(&meta.commit, file.path, &meta.etag).map_err(cache_err)?;
    Ok(Outcome::Done(link))
}

/// Holds `.locks/{repo folder}/{etag}.lock` (the lock file `huggingface_hub`
/// takes), so two processes never write one blob.
fn lock(hub: &Hub, repo: &RepoId, etag: &str) -> Result<File, HubError> {
    let dir = hub.config().cache_dir.join(".locks").join(repo.folder_name());
    std::fs::create_dir_all(&dir).map_err(|e| HubError::file(&dir, &e))?;
    let path = dir.join(format!("{etag}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HubError::file(&path, &e))?;
    file.lock().map_err(|e| HubError::file(&path, &e))?;
    Ok(file)
}

/// Streams the blob into `{etag}.incomplete`, resuming, then checks and renames it.
fn download_blob(
    hub: &Hub,
    file: &FileRequest<'_>,
    meta: &FileMetadata,
    cache: &RepoCache,
    progress: &mut dyn FnMut(u64, Option<u64>) -> Flow,
) -> Result<Outcome, HubError> {
    let partial_path = cache.incomplete_blob(&meta.etag);
    if let Some(parent) = partial_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HubError::file(parent, &e))?;
    }
    let mut partial = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial_path)
        .map_err(|e| HubError::file(&partial_path, &e))?;
    let expected = Expected::of(file.sha256, &meta.etag);
    let mut hasher = Hasher::new(&expected, meta.size);
    let mut done = hasher.absorb_existing(&mut partial, meta.size).map_err(|e| HubError::file(&partial_path, &e))?;
    // The checksum runs on a helper thread while the next chunk arrives.
    let (stopped, hasher) = std::thread::scope(|scope| {
        let mut pipe = HashPipe::start(scope, hasher);
        let stopped = transfer(hub, file, meta, &mut partial, &partial_path, &mut pipe, &mut done, progress);
        (stopped, pipe.finish())
    });
    drop(partial);
    match stopped? {
        Some(Flow::Cancel) => {
            let _ = std::fs::remove_file(&partial_path);
            return Ok(Outcome::Cancelled);
        }
        Some(_) => return Ok(Outcome::Paused),
        None => {}
    }
    let hasher = hasher.ok_or_else(|| HubError::File {
        path: partial_path.display().to_string(),
        detail: "the checksum thread stopped".into(),
    })?;
    if let Some((expected, actual)) = hasher.finish()
        && expected != actual
    {
        let _ = std::fs::remove_file(&partial_path);
        return Err(HubError::Checksum { repo: file.repo.to_string(), path: file.path.to_owned(), expected, actual });
    }
    let blob = cache.blob(&meta.etag);
    std::fs::rename(&partial_path, &blob).map_err(|e| HubError::file(&blob, &e))?;
    Ok(Outcome::Done(blob))
}

/// Requests the rest of the blob until it is whole, resuming after dropped
/// connections; `Some(flow)` when the caller paused or cancelled.
#[allow(clippy::too_many_arguments)]
fn transfer(
    hub: &Hub,
    file: &FileRequest<'_>,
    meta: &FileMetadata,
    partial: &mut File,
    partial_path: &Path,
    pipe: &mut HashPipe<'_>,
    done: &mut u64,
    progress: &mut dyn FnMut(u64, Option<u64>) -> Flow,
) -> Result<Option<Flow>, HubError> {
    let mut resumes = 0;
    loop {
        if meta.size.is_some_and(|size| *done >= size) {
            return Ok(None);
        }
        match stream(hub, file.repo, meta, partial, partial_path, pipe, done, progress) {
            Ok(Some(flow)) => return Ok(Some(flow)),
            Ok(None) if meta.size.is_none() => return Ok(None),
            Ok(None) => {}
            Err(Dropped(detail)) => {
                resumes += 1;
                if resumes > MAX_RESUMES {
                    return Err(HubError::Connect { server: meta.location.clone(), detail });
                }
                std::thread::sleep(Duration::from_millis(200 * u64::from(resumes)));
            }
            Err(Fatal(e)) => return Err(e),
        }
    }
}

/// Why one request's stream stopped early.
enum StreamError {
    /// The connection failed: resume.
    Dropped(String),
    Fatal(HubError),
}
use StreamError::{Dropped, Fatal};

/// One `GET` from `done` onward, appended to `partial`. `Ok(Some(flow))`
/// when the caller paused or cancelled, `Ok(None)` when the body ended.
#[allow(clippy::too_many_arguments)]
fn stream(
    hub: &Hub,
    repo: &RepoId,
    meta: &FileMetadata,
    partial: &mut File,
    partial_path: &Path,
    hasher: &mut HashPipe<'_>,
    done: &mut u64,
    progress: &mut dyn FnMut(u64, Option<u64>) -> Flow,
) -> Result<Option<Flow>, StreamError> {
    let response = match hub.request(Method::Get, &meta.location, Some(*done), true) {
        Ok(response) => response,
        Err(HubError::Connect { detail, .. }) => return Err(Dropped(detail)),
        Err(e) => return Err(Fatal(e)),
    };
    let status = response.status().as_u16();
    let file_err = |e: io::Error| Fatal(HubError::file(partial_path, &e));
    match status {
        206 => {
            let start = header(&response, "content-range").and_then(|r| range_start(&r));
            if start != Some(*done) {
                return Err(Fatal(HubError::BadAnswer {
                    url: meta.location.clone(),
                    detail: format!("asked for bytes from {done}, got range {start:?}"),
                }));
            }
        }
        // The server sent the whole file: start again.
        200 => {
            if *done > 0 {
                partial.set_len(0).map_err(file_err)?;
                hasher.reset();
                *done = 0;
            }
        }
        _ => return Err(Fatal(hub.status_error(&response, &meta.location, repo, ""))),
    }
    partial.seek(io::SeekFrom::Start(*done)).map_err(file_err)?;
    let mut body = response.into_body().into_reader();
    loop {
        let mut buffer = hasher.buffer();
        let n = match read_full(&mut body, &mut buffer) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(e) => {
                partial.flush().map_err(file_err)?;
                return Err(Dropped(e.to_string()));
            }
        };
        if meta.size.is_some_and(|size| *done + n as u64 > size) {
            let _ = partial.set_len(0);
            return Err(Fatal(HubError::BadAnswer {
                url: meta.location.clone(),
                detail: format!("sent more than the {} bytes it announced", meta.size.unwrap_or(0)),
            }));
        }
        if let Err(e) = partial.write_all(&buffer[..n]) {
            return Err(Fatal(write_error(partial_path, *done, &e)));
        }
        hasher.update(buffer, n);
        *done += n as u64;
        match progress(*done, meta.size) {
            Flow::Continue => {}
            flow => {
                partial.flush().map_err(file_err)?;
                return Ok(Some(flow));
            }
        }
    }
}

/// A failed write: a full disk (or a quota, or a file-size limit) says so;
/// the partial blob is kept to resume.
pub(crate) fn write_error(path: &Path, kept: u64, error: &io::Error) -> HubError {
    use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    if matches!(error.kind(), StorageFull | QuotaExceeded | FileTooLarge) {
        HubError::DiskFull { path: path.display().to_string(), kept, detail: error.to_string() }
    } else {
        HubError::file(path, error)
    }
}

/// Fills `buffer` unless the body ends first; the count read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if filled > 0 => {
                // Keep what arrived; the error comes back on the next read.
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `bytes START-END/TOTAL` → START.
pub fn range_start(content_range: &str) -> Option<u64> {
    content_range.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

/// Chunks in flight between the download and the checksum thread.
const PIPE_DEPTH: usize = 4;

enum Chunk {
    Bytes(Vec<u8>, usize),
    Reset,
}

/// A [`Hasher`] on its own thread: chunks go to it after they are written
/// and their buffers come back for the next reads.
struct HashPipe<'scope> {
    chunks: Option<std::sync::mpsc::SyncSender<Chunk>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    worker: std::thread::ScopedJoinHandle<'scope, Hasher>,
    allocated: usize,
}

impl<'scope> HashPipe<'scope> {
    fn start(scope: &'scope std::thread::Scope<'scope, '_>, mut hasher: Hasher) -> Self {
        let (chunks, incoming) = std::sync::mpsc::sync_channel::<Chunk>(PIPE_DEPTH);
        let (give_back, spare) = std::sync::mpsc::sync_channel(PIPE_DEPTH + 1);
        let worker = scope.spawn(move || {
            for chunk in incoming {
                match chunk {
                    Chunk::Bytes(buffer, n) => {
                        hasher.update(&buffer[..n]);
                        let _ = give_back.try_send(buffer);
                    }
                    Chunk::Reset => hasher.reset(),
                }
            }
            hasher
        });
        Self { chunks: Some(chunks), spare, worker, allocated: 0 }
    }

    /// A buffer to read the next chunk into.
    fn buffer(&mut self) -> Vec<u8> {
        if let Ok(buffer) = self.spare.try_recv() {
            return buffer;
        }
        if self.allocated < PIPE_DEPTH + 1 {
            self.allocated += 1;
            return vec![0u8; CHUNK];
        }
        self.spare.recv().unwrap_or_else(|_| vec![0u8; CHUNK])
    }

    fn update(&self, buffer: Vec<u8>, n: usize) {
        if let Some(chunks) = &self.chunks {
            let _ = chunks.send(Chunk::Bytes(buffer, n));
        }
    }

    fn reset(&self) {
        if let Some(chunks) = &self.chunks {
            let _ = chunks.send(Chunk::Reset);
        }
    }

    /// Waits for the last chunks; `None` if the thread panicked.
    fn finish(mut self) -> Option<Hasher> {
        self.chunks = None;
        self.worker.join().ok()
    }
}

/// The running checksum of the bytes written.
enum Hasher {
    Sha256(sha2::Sha256, String),
    GitSha1(sha1::Sha1, String, u64),
    None,
}

impl Hasher {
    fn new(expected: &Expected, size: Option<u64>) -> Self {
        match (expected, size) {
            (Expected::Sha256(sha), _) => Hasher::Sha256(sha2::Sha256::new(), sha.clone()),
            (Expected::GitSha1(id), Some(size)) => Hasher::GitSha1(git_blob_hasher(size), id.clone(), size),
            _ => Hasher::None,
        }
    }

    fn reset(&mut self) {
        match self {
            Hasher::Sha256(h, _) => *h = sha2::Sha256::new(),
            Hasher::GitSha1(h, _, size) => *h = git_blob_hasher(*size),
            Hasher::None => {}
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h, _) => h.update(bytes),
            Hasher::GitSha1(h, _, _) => h.update(bytes),
            Hasher::None => {}
        }
    }

    /// Hashes what an earlier run left in `partial` (cut to `size` if longer); its length.
    fn absorb_existing(&mut self, partial: &mut File, size: Option<u64>) -> io::Result<u64> {
        let mut len = partial.metadata()?.len();
        if size.is_some_and(|size| len > size) {
            partial.set_len(0)?;
            len = 0;
        }
        partial.seek(io::SeekFrom::Start(0))?;
        let mut buffer = vec![0u8; CHUNK];
        let mut left = len;
        while left > 0 {
            let n = partial.read(&mut buffer[..CHUNK.min(left as usize)])?;
            if n == 0 {
                break;
            }
            self.update(&buffer[..n]);
            left -= n as u64;
        }
        Ok(len)
    }

    /// `(expected, actual)` lower-case hex, or `None` when nothing is checked.
    fn finish(self) -> Option<(String, String)> {
        match self {
            Hasher::Sha256(h, expected) => Some((expected, hex(&h.finalize()))),
            Hasher::GitSha1(h, expected, _) => Some((expected, hex(&h.finalize()))),
            Hasher::None => None,
        }
    }
}

fn git_blob_hasher(size: u64) -> sha1::Sha1 {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {size}\0").as_bytes());
    h
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_and_git_ids() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("items 1-2/3"), None);
        // `git hash-object` of "hello\n".
        let mut h = git_blob_hasher(6);
        h.update(b"hello\n");
        assert_eq!(hex(&h.finalize()), "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn a_full_disk_is_named_as_such() {
        let e = io::Error::from(io::ErrorKind::StorageFull);
        let message = write_error(Path::new("/cache/blobs/abc.incomplete"), 42, &e).to_string();
        assert!(
            message.contains("disk is full") && message.contains("abc.incomplete") && message.contains("42"),
            "{message}"
        );
    }
}
