//! What `segment` and `watch` write for each image: its mask and its overlay, at the image's
//! own size.

use std::path::{Path, PathBuf};

use anyhow::Result;
use msnet_eval::overlay::write_overlay;
use msnet_io::write_gray_png;

use crate::preprocess::ShownImage;

/// Where the mask and overlay of one image go.
pub struct Outputs {
    pub mask: PathBuf,
    pub overlay: PathBuf,
}

impl Outputs {
    /// `STEM.mask.png` and `STEM.overlay.png` in `folder`.
    pub fn named(folder: &Path, stem: &str) -> Self {
        Self {
            mask: folder.join(format!("{stem}.mask.png")),
            overlay: folder.join(format!("{stem}.overlay.png")),
        }
    }

    /// Writes `mask` (labels in `0..classes` at `image.hw`) as a gray PNG
    /// ([`msnet_labels::mask_png`]) and the overlay of its contours on `image`.
    pub fn write(&self, image: &ShownImage, mask: &[u8], classes: usize) -> Result<()> {
        let grays: Vec<u8> = mask
            .iter()
            .map(|&l| msnet_labels::mask_png::gray_of(l, classes))
            .collect();
        write_gray_png(&self.mask, image.hw, &grays)?;
        // Freed before the overlay is drawn: the larger of the two moments sets the peak.
        drop(grays);
        write_overlay(
            &self.overlay,
            &image.pixels,
            image.channels,
            image.hw,
            mask,
            None,
            classes,
        )?;
        Ok(())
    }
}
