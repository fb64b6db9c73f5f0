//! The encoded test set of a 2-D model, drawn as a scatter under the latent map.

use std::path::Path;

use super::error::FileError;
use safetensors::{Dtype, SafeTensors};

/// Posterior means of held-out images and their class labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatentMap {
    /// One (z1, z2) point per image.
    pub points: Vec<[f32; 2]>,
    /// Class of each point.
    pub labels: Vec<u8>,
}

/// Tensor names inside the file.
const POINTS: &str = "points";
const LABELS: &str = "labels";

/// Reads a latent map written by [`write_latent_map`]; errors name the file.
pub fn read_latent_map(path: &Path) -> Result<LatentMap, FileError> {
    let err = |e: &dyn std::fmt::Display| FileError::new(path, e);
    let bytes = std::fs::read(path).map_err(|e| err(&e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(&e))?;
    let points = st.tensor(POINTS).map_err(|e| err(&e))?;
    let labels = st.tensor(LABELS).map_err(|e| err(&e))?;
    let n = labels.shape().first().copied().unwrap_or(0);
    if points.dtype() != Dtype::F32 || points.shape() != [n, 2] || labels.dtype() != Dtype::U8 || labels.shape() != [n]
    {
        return Err(err(&format!("expected points f32 [{n}, 2] and labels u8 [{n}]")));
    }
    let coords: Vec<f32> =
        points.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(LatentMap { points: coords.chunks_exact(2).map(|c| [c[0], c[1]]).collect(), labels: labels.data().to_vec() })
}

/// Writes `map` as safetensors.
pub fn write_latent_map(path: &Path, map: &LatentMap) -> Result<(), FileError> {
    let coords: Vec<u8> = map.points.iter().flat_map(|p| p.iter().flat_map(|v| v.to_le_bytes())).collect();
    let n = map.labels.len();
    let err = |e: safetensors::SafeTensorError| FileError::new(path, e);
    let points = safetensors::tensor::TensorView::new(Dtype::F32, vec![n, 2], &coords).map_err(err)?;
    let labels = safetensors::tensor::TensorView::new(Dtype::U8, vec![n], &map.labels).map_err(err)?;
    safetensors::serialize_to_file([(POINTS, points), (LABELS, labels)], None, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.safetensors");
        let map = LatentMap { points: vec![[0.5, -1.0], [2.0, 3.0]], labels: vec![4, 9] };
        write_latent_map(&path, &map).unwrap();
        assert_eq!(read_latent_map(&path).unwrap(), map);
    }

    #[test]
    fn garbage_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not a tensor file").unwrap();
        assert!(read_latent_map(&path).unwrap_err().to_string().contains("bad.safetensors"));
    }
}
