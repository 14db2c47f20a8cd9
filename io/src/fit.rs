//! How an image of any size becomes a 2D model's input, and its prediction comes back to the
//! image's own size: one rule per model, fixed by the dataset it was trained on, so the
//! training loader, `msnet eval` and the device (`msnet-run segment`, `watch`, `finetune`)
//! bring an image to the network the same way.
//!
//! - [`InputFit::Resize`]: bilinear with half-pixel centres ([`resize_bilinear`]), labels by
//!   nearest neighbour; aspect ratio not preserved (Drishti-GS1 crops and photographs, user
//!   folders).
//! - [`InputFit::CropOrPad`]: no resampling, as the paper does for WBC Dataset 1: centre-crop
//!   an axis that is larger, pad one that is smaller (the image replicates its edge pixels, a
//!   constant fill would draw a border the network could learn; labels pad with background 0).
//!   An odd difference puts the extra row/column at the end for a crop and at the start for a
//!   pad (offset = ⌊(source − target) / 2⌋). Brought back, the pixels a crop dropped are
//!   background: the network never saw them.

use crate::{resize_bilinear, resize_nearest};
use msnet::Config;
use msnet::sample::DatasetKind;

/// How images are brought to the model's input size (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFit {
    Resize,
    CropOrPad,
}

impl InputFit {
    /// The rule of a model: that of the dataset its training record names (for a fine-tuned
    /// model, the dataset its first base model was trained on); [`InputFit::Resize`] for a
    /// model that records none.
    pub fn of(config: &Config) -> Self {
        let mut record = config.training.as_ref();
        while let Some(base) = record.and_then(|r| r.base.as_ref()) {
            record = base.training.as_deref();
        }
        record
            .and_then(|r| r.dataset.kind())
            .map_or(InputFit::Resize, InputFit::of_dataset)
    }

    /// How a dataset's images are brought to the model's input (module docs).
    pub fn of_dataset(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Wbc => InputFit::CropOrPad,
            _ => InputFit::Resize,
        }
    }

    /// Its name in messages and JSON: `resize` or `crop-or-pad`.
    pub fn name(self) -> &'static str {
        match self {
            InputFit::Resize => "resize",
            InputFit::CropOrPad => "crop-or-pad",
        }
    }

    /// A planar `[channels, from_hw]` image at `to_hw`.
    ///
    /// # Panics
    /// If `image.len() != channels · from_hw[0] · from_hw[1]` (a caller bug).
    pub fn image(
        self,
        image: &[f32],
        channels: usize,
        from_hw: [usize; 2],
        to_hw: [usize; 2],
    ) -> Vec<f32> {
        match self {
            InputFit::Resize => resize_bilinear(image, channels, from_hw, to_hw),
            InputFit::CropOrPad => {
                let plane = from_hw[0] * from_hw[1];
                assert_eq!(
                    image.len(),
                    channels * plane,
                    "InputFit::image: buffer length"
                );
                let (rows, cols) = (
                    axis_map(from_hw[0], to_hw[0]),
                    axis_map(from_hw[1], to_hw[1]),
                );
                let mut out = Vec::with_capacity(channels * to_hw[0] * to_hw[1]);
                for src in image.chunks_exact(plane.max(1)) {
                    for &(r, _) in &rows {
                        out.extend(cols.iter().map(|&(k, _)| src[r * from_hw[1] + k]));
                    }
                }
                out
            }
        }
    }

    /// An `[from_hw]` label map (a training mask) at `to_hw`.
    pub fn labels(self, labels: &[u8], from_hw: [usize; 2], to_hw: [usize; 2]) -> Vec<u8> {
        match self {
            InputFit::Resize => resize_nearest(labels, from_hw, to_hw),
            InputFit::CropOrPad => {
                assert_eq!(labels.len(), from_hw[0] * from_hw[1], "InputFit::labels");
                let (rows, cols) = (
                    axis_map(from_hw[0], to_hw[0]),
                    axis_map(from_hw[1], to_hw[1]),
                );
                let mut out = Vec::with_capacity(to_hw[0] * to_hw[1]);
                for &(r, r_in) in &rows {
                    out.extend(cols.iter().map(|&(k, k_in)| {
                        if r_in && k_in {
                            labels[r * from_hw[1] + k]
                        } else {
                            0
                        }
                    }));
                }
                out
            }
        }
    }

    /// A prediction at the model's `model_hw` brought back to the image's `image_hw`: the
    /// inverse of [`InputFit::image`] (nearest for a resize; for a crop, background where the
    /// model saw nothing).
    pub fn back(self, prediction: &[u8], model_hw: [usize; 2], image_hw: [usize; 2]) -> Vec<u8> {
        match self {
            InputFit::Resize => resize_nearest(prediction, model_hw, image_hw),
            InputFit::CropOrPad => {
                assert_eq!(
                    prediction.len(),
                    model_hw[0] * model_hw[1],
                    "InputFit::back"
                );
                // Image pixel j was model pixel j − offset, the offset of the forward map (not
                // the offset of a crop the other way, which differs by one on odd differences).
                let inverse = |image: usize, model: usize| -> Vec<Option<usize>> {
                    let offset = (image as isize - model as isize).div_euclid(2);
                    (0..image as isize)
                        .map(|j| usize::try_from(j - offset).ok().filter(|&m| m < model))
                        .collect()
                };
                let rows = inverse(image_hw[0], model_hw[0]);
                let cols = inverse(image_hw[1], model_hw[1]);
                let mut out = Vec::with_capacity(image_hw[0] * image_hw[1]);
                for r in &rows {
                    out.extend(cols.iter().map(|k| match (r, k) {
                        (Some(r), Some(k)) => prediction[r * model_hw[1] + k],
                        _ => 0,
                    }));
                }
                out
            }
        }
    }
}

/// For each target index along an axis: the source index to copy (clamped to the edge) and
/// whether it lies inside the source (false = padding).
fn axis_map(from: usize, to: usize) -> Vec<(usize, bool)> {
    let offset = (from as isize - to as isize).div_euclid(2);
    (0..to)
        .map(|i| {
            let s = i as isize + offset;
            let inside = s >= 0 && s < from as isize;
            (s.clamp(0, from as isize - 1) as usize, inside)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::config::{BaseModel, TrainingRecord};

    #[test]
    fn crop_or_pad_on_mixed_axes() {
        // 3 rows × 5 columns → 5 × 3: rows padded by 1 each side (edge replicated, labels
        // background), columns cropped by 1 each side.
        let image: Vec<f32> = (0..15).map(|i| i as f32).collect();
        let labels: Vec<u8> = (0..15).map(|i| (i % 3 + 1) as u8).collect();
        let fit = InputFit::CropOrPad;
        let out = fit.image(&image, 1, [3, 5], [5, 3]);
        assert_eq!(
            out,
            [
                1., 2., 3., 1., 2., 3., 6., 7., 8., 11., 12., 13., 11., 12., 13.
            ]
        );
        let lab = fit.labels(&labels, [3, 5], [5, 3]);
        assert_eq!(&lab[..3], &[0, 0, 0]);
        assert_eq!(&lab[3..6], &labels[1..4]);
        assert_eq!(&lab[12..], &[0, 0, 0]);
    }

    /// Brought back, every pixel the model saw lands where it came from, at odd and even
    /// differences, cropped or padded; what it did not see is background.
    #[test]
    fn back_inverts_the_forward_map() {
        let fit = InputFit::CropOrPad;
        for (image_hw, model_hw) in [
            ([117, 120], [112, 112]),
            ([88, 95], [112, 112]),
            ([4, 4], [4, 4]),
        ] {
            let n = image_hw[0] * image_hw[1];
            // Labels that encode the position (1..=250, never 0).
            let labels: Vec<u8> = (0..n).map(|i| (i % 250 + 1) as u8).collect();
            let seen = fit.labels(&labels, image_hw, model_hw);
            let back = fit.back(&seen, model_hw, image_hw);
            assert_eq!(back.len(), n);
            let restored = back.iter().zip(&labels).filter(|(b, l)| b == l).count();
            let inside = image_hw[0].min(model_hw[0]) * image_hw[1].min(model_hw[1]);
            assert_eq!(restored, inside, "{image_hw:?} -> {model_hw:?}");
            assert!(back.iter().zip(&labels).all(|(b, l)| b == l || *b == 0));
        }
        // A resize comes back by nearest neighbour.
        assert_eq!(
            InputFit::Resize.back(&[1, 2, 3, 4], [2, 2], [4, 4])[..4],
            [1, 1, 2, 2]
        );
    }

    #[test]
    fn the_rule_follows_the_dataset_through_fine_tuning() {
        let mut config = Config::new(2, 3, 3);
        assert_eq!(InputFit::of(&config), InputFit::Resize);
        config.training = Some(TrainingRecord::new("wbc", vec![], vec![]));
        assert_eq!(InputFit::of(&config), InputFit::CropOrPad);
        let mut tuned = TrainingRecord::new("finetune", vec![], vec![]);
        tuned.base = Some(BaseModel {
            path: "base".into(),
            weights_sha256: String::new(),
            training: config.training.clone().map(Box::new),
        });
        config.training = Some(tuned);
        assert_eq!(InputFit::of(&config), InputFit::CropOrPad);
        config.training = Some(TrainingRecord::new("drishti", vec![], vec![]));
        assert_eq!(InputFit::of(&config), InputFit::Resize);
    }
}
