//! # msnet-labels: what a label map means, defined once
//!
//! It owns the rules every consumer of MSNet's output shares: the class of a voxel (the
//! argmax of its scores, [`class_at`]), and for optic disc/cup models which classes are the
//! disc and the cup, the vertical extent of a mask, the vertical cup-to-disc ratio and the
//! one-disc-one-cup cleanup ([`DiscCup`], [`regions`]), and the gray each class is written
//! as in a mask PNG ([`mask_png`]). `msnet eval`, `msnet-run segment`, the trainers and the
//! fundus camera's device loop all call these.
//!
//! It must not know models, files or engines, and stays `#![no_std]` without an allocator
//! (the camera runs it); the `alloc` feature adds [`argmax`] into a new `Vec`.
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

mod disc_cup;
pub mod mask_png;
pub mod regions;

pub use disc_cup::{CUP_CLASS_NAME, DiscCup, Measurements, RowSpan};

/// The class of voxel `voxel` in channels-first scores `[classes][voxels]` (probabilities or
/// logits): the highest score; ties go to the lower class, as ONNX ArgMax, and NaN never
/// wins. `voxel` must be below `scores.len() / classes`.
pub fn class_at(scores: &[f32], classes: usize, voxel: usize) -> usize {
    let voxels = scores.len() / classes.max(1);
    (1..classes).fold(0, |best, c| {
        if scores[c * voxels + voxel] > scores[best * voxels + voxel] {
            c
        } else {
            best
        }
    })
}

/// [`class_at`] of every voxel into `labels` (one per voxel; labels are `u8`, the type of
/// every mask in the project, so at most 256 classes).
pub fn argmax_into(scores: &[f32], classes: usize, labels: &mut [u8]) {
    for (voxel, label) in labels.iter_mut().enumerate() {
        *label = class_at(scores, classes, voxel) as u8;
    }
}

/// [`class_at`] of every voxel.
#[cfg(feature = "alloc")]
pub fn argmax(scores: &[f32], classes: usize) -> alloc::vec::Vec<u8> {
    let mut labels = alloc::vec![0; scores.len() / classes.max(1)];
    argmax_into(scores, classes, &mut labels);
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_class_wins_and_ties_go_to_the_lower() {
        // Three classes, four voxels: [class][voxel].
        let scores = [
            0.2,
            0.5,
            0.1,
            f32::NAN, //
            0.7,
            0.5,
            0.1,
            0.3, //
            0.1,
            0.0,
            0.8,
            0.3,
        ];
        let mut labels = [9; 4];
        argmax_into(&scores, 3, &mut labels);
        assert_eq!(labels, [1, 0, 2, 0]);
    }
}
