//! # msnet-io: image and volume I/O, the only place where files are decoded into numbers
//!
//! - [`image`]: 2D images (PNG, JPEG, BMP, TIFF) to channel-first `f32` in `[0, 1]` (float TIFF
//!   samples taken as they are, and refused unless finite and in `[0, 1]`), label masks to `u8`,
//!   bilinear / nearest resizing, and gray PNG writing.
//! - [`nifti`]: 3D NIfTI-1 volumes (`.nii`, `.nii.gz`) to `[D, H, W]` buffers, and a `uint8`
//!   writer for predicted label volumes.
//! - [`npy`]: NumPy `.npy` float32 arrays (golden bundles).
//! - [`fit`]: how an image is brought to a 2D model's input and its prediction back, one rule
//!   per model for the loader and the device alike.
//! - [`phantom`]: deterministic synthetic images and volumes, for tests, benchmarks and the
//!   golden bundles' inputs (no research data in the repository).
//!
//! Every error names the file it concerns. Decoders are fed user files, so sizes are checked
//! against hard limits before any large allocation, a file that ends early is an error in every
//! format, and nothing here panics on file content. Callers with a memory budget check it from
//! the header alone: [`read_image_checked`] shows them the [`ImageHeader`] before any pixel is
//! decoded, [`read_volume_shape`] reads a volume's header without its data.

pub mod fit;
pub mod image;
pub mod nifti;
pub mod npy;
pub mod phantom;

pub use self::image::{
    ImageHeader, decode_image, read_image, read_image_checked, read_mask, resize_bilinear,
    resize_nearest, write_gray_png, write_image_png,
};
pub use self::nifti::{
    read_volume_f32, read_volume_shape, read_volume_u8, write_volume_f32, write_volume_u8,
};

use std::path::{Path, PathBuf};

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
pub fn unreadable(path: &Path, reason: impl std::fmt::Display) -> IoError {
    IoError::Unreadable {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to `path` atomically ([`msnet::fsutil::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    msnet::fsutil::write_atomic(path, bytes).map_err(|e| IoError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

// It must not depend on the datasets' loaders, on evaluation or on any engine: the device
// command links it to read what it segments.
