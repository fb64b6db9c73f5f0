//! NumPy's `.npy` format for float arrays (version 1.0/2.0, little-endian,
//! C order): `--noise FILE.npy` starts a diffusion run from another tool's
//! initial latent, and runs can save theirs for others.

use std::path::Path;

/// A float array with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Why a file is not an array we can read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {detail}")]
pub struct NpyError {
    pub path: String,
    pub detail: String,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a little-endian float32 or float64 C-order array (float64 is narrowed to f32).
pub fn read_npy(path: &Path) -> Result<NpyArray, NpyError> {
    let source = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| NpyError { path: source.clone(), detail: e.to_string() })?;
    parse_npy(&bytes, &source)
}

/// [`read_npy`] on a file's bytes; `source` names the file in errors.
pub fn parse_npy(bytes: &[u8], source: &str) -> Result<NpyArray, NpyError> {
    let err = |detail: String| NpyError { path: source.to_owned(), detail };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(format!(".npy version {v} is not supported"))),
    };
    let header = bytes.get(start..start + header_len).ok_or_else(|| err("the header is cut off".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| err("the header is not text".into()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr").ok_or_else(|| err("no 'descr' in the header".into()))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(err(format!(
            "dtype {} is not little-endian float32/float64",
            descr.split(',').next().unwrap_or("")
        )));
    };
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(err("Fortran-ordered arrays are not supported".into()));
    }
    let shape_text = field("shape").ok_or_else(|| err("no 'shape' in the header".into()))?;
    let inner =
        shape_text.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| err("bad shape".into()))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(format!("bad dimension {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // A hostile shape must not overflow into a size that happens to match.
    let needed = shape.iter().try_fold(width, |n: usize, &d| n.checked_mul(d));
    let body = &bytes[start + header_len..];
    if needed != Some(body.len()) {
        let needed = needed.map_or_else(|| "more than any file's".to_owned(), |n| n.to_string());
        return Err(err(format!("shape {shape:?} needs {needed} bytes of data, the file has {}", body.len())));
    }
    let data = if width == 4 {
        body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    } else {
        body.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect()
    };
    Ok(NpyArray { shape, data })
}

/// The bytes of a float32 `.npy` file (version 1.0).
pub fn npy_bytes(array: &NpyArray) -> Vec<u8> {
    let dims = array.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic, version and length take 10 bytes; the header ends in \n, the total a multiple of 64.
    let padded = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(padded - 10 - header.len() - 1));
    header.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(array.data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_arrays_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![5], vec![1, 4, 8, 8]] {
            let n: usize = shape.iter().product();
            let array = NpyArray { shape, data: (0..n).map(|i| i as f32 * 0.25 - 3.0).collect() };
            let bytes = npy_bytes(&array);
            assert_eq!((bytes.len() - n * 4) % 64, 0, "header padded to 64 bytes");
            let path = dir.path().join("a.npy");
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(read_npy(&path).unwrap(), array);
        }
    }

    /// A shape whose element count overflows, with an empty body that the
    /// wrapped size would have matched, is refused rather than read as data.
    #[test]
    fn an_overflowing_shape_is_refused() {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, 4), }}", 1usize << 62);
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        let e = parse_npy(&bytes, "x.npy").unwrap_err();
        assert!(e.to_string().contains("more than any file's"), "{e}");
    }

    /// The bytes numpy 2.x writes for `np.save(f, np.array([[1.5, -2.0]], dtype='<f8'))`.
    #[test]
    fn a_numpy_float64_file_reads() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        let padded = format!("{header:<117}\n");
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        bytes.extend(1.5f64.to_le_bytes());
        bytes.extend((-2.0f64).to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.npy");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_npy(&path).unwrap(), NpyArray { shape: vec![1, 2], data: vec![1.5, -2.0] });
    }

    #[test]
    fn wrong_files_are_named_and_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.npy");
        std::fs::write(&path, b"hello").unwrap();
        assert!(read_npy(&path).unwrap_err().to_string().contains("c.npy"));
        let mut short = npy_bytes(&NpyArray { shape: vec![4], data: vec![0.0; 4] });
        short.truncate(short.len() - 4);
        std::fs::write(&path, short).unwrap();
        assert!(read_npy(&path).unwrap_err().to_string().contains("needs 16 bytes"));
    }
}
