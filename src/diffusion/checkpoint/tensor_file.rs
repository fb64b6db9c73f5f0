//! A `.safetensors` file read tensor by tensor: the header is parsed and
//! checked against the file's length up front (a truncated download is
//! caught here, naming the file), and each tensor is read with a positioned
//! read only when a layer asks for it. Reading rather than memory-mapping
//! keeps the file's pages out of the process's resident memory, so a
//! checkpoint costs its converted weights and nothing more.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// Why a file cannot be read as tensors; the caller adds the path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "is a pickle checkpoint: opening one runs the Python code stored inside it, so the studio refuses it; use the model's .safetensors file instead (or convert it once with a tool you trust)"
    )]
    Pickle,
    #[error("is not a safetensors file ({0})")]
    NotSafetensors(String),
    #[error(
        "is truncated: its header describes {expected} bytes of tensors but only {actual} follow (an interrupted download?)"
    )]
    Truncated { expected: u64, actual: u64 },
    #[error("tensor {name}: {problem}")]
    Tensor { name: String, problem: String },
}

/// One tensor's place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub start: u64,
    pub end: u64,
}

/// A parsed header: the tensors and the `__metadata__` strings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    pub entries: HashMap<String, Entry>,
    pub metadata: HashMap<String, String>,
    /// Bytes before the data section (8 + the header's length).
    pub data_start: u64,
}

/// The safetensors dtype names candle can hold.
fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

/// Parses a header from the file's first bytes (`prefix`, at least 8 plus
/// the header's length) given the whole file's length.
pub fn parse_header(prefix: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    match parse_safetensors_header(prefix, file_len) {
        // Told apart only when the bytes are no safetensors header: a length's
        // first byte can be 0x80 too.
        Err(HeaderError::NotSafetensors(_)) if looks_like_pickle(prefix) => Err(HeaderError::Pickle),
        other => other,
    }
}

/// A pickle (protocol 2–5) or PyTorch's zip archive of pickles.
fn looks_like_pickle(prefix: &[u8]) -> bool {
    matches!(prefix, [0x80, 2..=5, ..]) || prefix.starts_with(b"PK\x03\x04")
}

fn parse_safetensors_header(prefix: &[u8], file_len: u64) -> Result<Header, HeaderError> {
    let Some(len_bytes) = prefix.get(..8) else {
        return Err(HeaderError::NotSafetensors("shorter than 8 bytes".into()));
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(len);
    let data_start = header_len.checked_add(8).filter(|&s| s <= file_len).ok_or_else(|| {
        HeaderError::NotSafetensors(format!("a header of {header_len} bytes does not fit in {file_len}"))
    })?;
    let Some(json) = usize::try_from(data_start).ok().and_then(|end| prefix.get(8..end)) else {
        return Err(HeaderError::NotSafetensors("header not read in full".into()));
    };
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| HeaderError::NotSafetensors(format!("its header is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(HeaderError::NotSafetensors("its header is not a JSON object".into()));
    };
    let mut header = Header { data_start, ..Header::default() };
    let mut data_end = 0u64;
    for (name, field) in fields {
        if name == "__metadata__" {
            if let Value::Object(meta) = field {
                header.metadata = meta.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect();
            }
            continue;
        }
        let entry = parse_entry(&field).map_err(|problem| HeaderError::Tensor { name: name.clone(), problem })?;
        data_end = data_end.max(entry.end);
        header.entries.insert(name, entry);
    }
    let actual = file_len - data_start;
    if data_end > actual {
        return Err(HeaderError::Truncated { expected: data_end, actual });
    }
    Ok(header)
}

fn parse_entry(field: &Value) -> Result<Entry, String> {
    let dtype_name = field.get("dtype").and_then(Value::as_str).ok_or("no dtype")?;
    let shape: Vec<usize> = field
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or("a dimension is not a size"))
        .collect::<Result<_, _>>()?;
    let offsets = field.get("data_offsets").and_then(Value::as_array).ok_or("no data_offsets")?;
    let [start, end] = offsets.as_slice() else { return Err("data_offsets is not [start, end]".into()) };
    let (start, end) = (start.as_u64().ok_or("bad start")?, end.as_u64().ok_or("bad end")?);
    let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64)).ok_or("its shape overflows")?;
    let Some(dtype) = dtype(dtype_name) else {
        // Kept so names and shapes are known; reading it gives the error.
        return Ok(Entry { dtype: DType::U8, shape: vec![], start, end: end.max(start) });
    };
    let bytes = elements.checked_mul(dtype.size_in_bytes() as u64).ok_or("its size overflows")?;
    if end < start || end - start != bytes {
        return Err(format!(
            "{dtype_name} {shape:?} needs {bytes} bytes, its offsets give {}",
            end.saturating_sub(start)
        ));
    }
    Ok(Entry { dtype, shape, start, end })
}

/// An open file and its header.
pub struct TensorFile {
    path: PathBuf,
    file: File,
    header: Header,
}

/// An error naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", path.display())]
pub struct TensorFileError {
    pub path: PathBuf,
    pub detail: String,
}

impl TensorFile {
    /// Opens `path` and checks its header.
    pub fn open(path: &Path) -> Result<Self, TensorFileError> {
        let error = |detail: String| TensorFileError { path: path.to_owned(), detail };
        let file = File::open(path).map_err(|e| error(e.to_string()))?;
        let file_len = file.metadata().map_err(|e| error(e.to_string()))?.len();
        let mut first = [0u8; 8];
        read_at(&file, &mut first[..file_len.min(8) as usize], 0).map_err(|e| error(e.to_string()))?;
        let header_len = u64::from_le_bytes(first).min(file_len.saturating_sub(8)).min(100 << 20);
        let mut prefix = vec![0u8; 8 + header_len as usize];
        read_at(&file, &mut prefix[..(file_len as usize).min(8 + header_len as usize)], 0)
            .map_err(|e| error(e.to_string()))?;
        let header = parse_header(&prefix, file_len).map_err(|e| error(e.to_string()))?;
        Ok(Self { path: path.to_owned(), file, header })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Names and shapes.
    pub fn shapes(&self) -> HashMap<String, Vec<usize>> {
        self.header.entries.iter().map(|(n, e)| (n.clone(), e.shape.clone())).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.header.entries.contains_key(name)
    }

    /// Reads one tensor in its stored dtype.
    pub fn read(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let Some(entry) = self.header.entries.get(name) else { candle_core::bail!("no tensor {name}") };
        if entry.shape.is_empty() && entry.end > entry.start && entry.dtype == DType::U8 {
            candle_core::bail!("tensor {name} has a dtype this studio cannot read");
        }
        let offset = self.header.data_start + entry.start;
        let failed = |e: std::io::Error| candle_core::Error::msg(format!("reading {name}: {e}"));
        let read = |bytes: &mut [u8]| read_at(&self.file, bytes, offset).map_err(failed);
        let elements = entry.shape.iter().product::<usize>();
        // Read straight into the tensor's own buffer (one copy, not two).
        macro_rules! typed {
            ($t:ty) => {{
                if elements * std::mem::size_of::<$t>() != (entry.end - entry.start) as usize {
                    candle_core::bail!("tensor {name}: its shape and byte range disagree");
                }
                let values: Vec<$t> = read_new(&self.file, elements, offset).map_err(failed)?;
                Tensor::from_vec(values, entry.shape.as_slice(), device)
            }};
        }
        match entry.dtype {
            DType::F16 => typed!(half::f16),
            DType::BF16 => typed!(half::bf16),
            DType::F32 => typed!(f32),
            _ => {
                let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
                read(&mut bytes)?;
                Tensor::from_raw_buffer(&bytes, entry.dtype, &entry.shape, device)
            }
        }
    }
}

/// `elements` values read from `offset` into a new vector. On Linux the
/// vector is not zeroed first: the read fills it, and zeroing 2 GB of
/// weights was a whole extra pass over memory (SD 1.5's fp16 file: load
/// 0.73–0.78 s → 0.57–0.68 s). Asking for transparent huge pages as well
/// halved that when the previous process had been ours, but took 1.1–2.4 s
/// after any other large process had run, so it is not done.
#[cfg(target_os = "linux")]
fn read_new<T: bytemuck::Pod>(file: &File, elements: usize, offset: u64) -> std::io::Result<Vec<T>> {
    use std::os::fd::AsRawFd;
    let bytes = elements * std::mem::size_of::<T>();
    let mut values: Vec<T> = Vec::with_capacity(elements);
    let start = values.as_mut_ptr().cast::<u8>();
    let mut done = 0;
    while done < bytes {
        let at = libc::off_t::try_from(offset + done as u64).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: `start + done .. start + bytes` lies inside the vector's
        // allocation (capacity `elements`), which nothing else refers to;
        // pread writes at most `bytes - done` bytes there.
        let n = unsafe { libc::pread(file.as_raw_fd(), start.add(done).cast(), bytes - done, at) };
        match n {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => done += n as usize,
        }
    }
    // SAFETY: all `bytes` bytes were written above, and every bit pattern
    // is a valid `T` (`Pod`).
    unsafe { values.set_len(elements) };
    Ok(values)
}

#[cfg(not(target_os = "linux"))]
fn read_new<T: bytemuck::Pod>(file: &File, elements: usize, offset: u64) -> std::io::Result<Vec<T>> {
    let mut values = vec![<T as bytemuck::Zeroable>::zeroed(); elements];
    read_at(file, bytemuck::cast_slice_mut(&mut values), offset)?;
    Ok(values)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        bytes
    }

    #[test]
    fn headers_are_checked_against_the_file() {
        let good = r#"{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}}"#;
        let bytes = file(good, 12);
        let h = parse_header(&bytes, bytes.len() as u64).unwrap();
        assert_eq!(h.entries["a"].shape, vec![2, 3]);
        assert_eq!(h.metadata["format"], "pt");
        let short = file(good, 6);
        assert_eq!(parse_header(&short, short.len() as u64), Err(HeaderError::Truncated { expected: 12, actual: 6 }));
        let lying = file(r#"{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}}"#, 12);
        assert!(matches!(parse_header(&lying, lying.len() as u64), Err(HeaderError::Tensor { .. })));
        assert_eq!(parse_header(b"\x80\x02}q\x00", 5), Err(HeaderError::Pickle));
        assert!(matches!(parse_header(&[1, 2], 2), Err(HeaderError::NotSafetensors(_))));
        let huge = u64::MAX.to_le_bytes();
        assert!(matches!(parse_header(&huge, 8), Err(HeaderError::NotSafetensors(_))));
    }
}
