//! Image and volume I/O: the only place where files are decoded into numbers.
//!
//! - [`image`]: 2D images (PNG, JPEG, BMP, TIFF) to channel-first `f32` in `[0, 1]`, label masks
//!   to `u8`, bilinear / nearest resizing, and gray PNG writing.
//! - [`nifti`]: 3D NIfTI-1 volumes (`.nii`, `.nii.gz`) to `[D, H, W]` buffers, and a `uint8`
//!   writer for predicted label volumes.
//!
//! Every error names the file it concerns. Decoders are fed user files, so sizes are checked
//! against hard limits before any large allocation, and nothing here panics on file content.

pub mod image;
pub mod nifti;

pub use self::image::{read_image, read_mask, resize_bilinear, resize_nearest, write_gray_png};
pub use self::nifti::{read_volume_f32, read_volume_u8, write_volume_f32, write_volume_u8};

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The largest accepted image side, in pixels (protects decoders from absurd headers).
pub const MAX_IMAGE_SIDE: usize = 16_384;
/// The largest accepted image area, in pixels (2^28).
pub const MAX_IMAGE_PIXELS: usize = 1 << 28;
/// The largest accepted volume, in voxels (2^28, i.e. 1 GiB as `f32`).
pub const MAX_VOLUME_VOXELS: usize = 1 << 28;

/// A failure reading or writing an image or a volume; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file is missing, unreadable, or not a decodable image.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// The image header announces a size beyond [`MAX_IMAGE_SIDE`] / [`MAX_IMAGE_PIXELS`].
    #[error(
        "{path}: image is {width}×{height} pixels; the limit is {MAX_IMAGE_SIDE} px per side \
         and {MAX_IMAGE_PIXELS} pixels in all"
    )]
    TooLarge {
        path: PathBuf,
        width: usize,
        height: usize,
    },
    /// A label mask that is not single-channel 8-bit (or RGB with three equal channels).
    #[error(
        "{path}: not a label mask: {reason} (masks must be 8-bit gray, or RGB with equal channels)"
    )]
    BadMask { path: PathBuf, reason: String },
    /// The voxel data ends before the size the NIfTI header promises.
    #[error(
        "{path}: truncated NIfTI volume: the header promises {expected_bytes} bytes of voxel data, \
         the file holds {got}"
    )]
    TruncatedNifti {
        path: PathBuf,
        expected_bytes: u64,
        got: u64,
    },
    /// Not a NIfTI-1 volume this crate can use (bad header, unsupported type or shape, corrupt gzip).
    #[error("{path}: unusable NIfTI-1 file: {reason}")]
    BadNifti { path: PathBuf, reason: String },
    /// A buffer handed to a writer does not match the shape it comes with (a caller bug).
    #[error("cannot write {path}: {reason}")]
    BadBuffer { path: PathBuf, reason: String },
    /// Creating, writing or renaming the output file failed.
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl IoError {
    /// The file the error concerns.
    pub fn path(&self) -> &Path {
        match self {
            IoError::Unreadable { path, .. }
            | IoError::TooLarge { path, .. }
            | IoError::BadMask { path, .. }
            | IoError::TruncatedNifti { path, .. }
            | IoError::BadNifti { path, .. }
            | IoError::BadBuffer { path, .. }
            | IoError::Write { path, .. } => path,
        }
    }
}

/// Builds an [`IoError::Unreadable`] for `path` from any displayable cause.
pub(crate) fn unreadable(path: &Path, reason: impl std::fmt::Display) -> IoError {
    IoError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so that a reader
/// sees either the old file or the complete new one, never a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    // A per-process counter keeps two threads writing the same target from sharing a temp file.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let write_err = |p: &Path, e: std::io::Error| IoError::Write {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let Some(name) = path.file_name() else {
        return Err(IoError::Write {
            path: path.to_path_buf(),
            reason: "the path has no file name".into(),
        });
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(|e| write_err(&tmp, e))?;
        file.write_all(bytes).map_err(|e| write_err(&tmp, e))?;
        file.sync_all().map_err(|e| write_err(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| write_err(path, e))
    })();
    if result.is_err() {
        // Best effort: the original error is what matters to the caller.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A unique, empty scratch directory under the system temp dir for tests.
#[cfg(test)]
pub(crate) fn test_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "msnet-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_file_and_leaves_no_temp() {
        let dir = test_dir("atomic");
        let p = dir.join("a.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "a temp file was left behind"
        );
        let e = write_atomic(&dir.join("no/such/x.png"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
