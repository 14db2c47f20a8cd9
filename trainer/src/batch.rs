//! Mini-batch tensors for burn. Which samples an iteration sees is
//! [`msnet_training::batch::batch_indices`].

use burn::tensor::{Device, Tensor, TensorData};
use msnet::sample::Sample;

/// Images `[B, C, D, H, W]`.
pub fn images(samples: &[&Sample], device: &Device) -> Tensor<5> {
    let s = samples[0];
    let [d, h, w] = s.shape;
    let data: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.image.iter().copied())
        .collect();
    Tensor::from_data(
        TensorData::new(data, [samples.len(), s.channels, d, h, w]),
        device,
    )
}

/// One-hot labels `[B, classes, D, H, W]`.
pub fn one_hot(samples: &[&Sample], classes: usize, device: &Device) -> Tensor<5> {
    let [d, h, w] = samples[0].shape;
    let voxels = d * h * w;
    let mut data = vec![0f32; samples.len() * classes * voxels];
    for (b, s) in samples.iter().enumerate() {
        for (j, &l) in s.labels.iter().enumerate() {
            data[(b * classes + l as usize) * voxels + j] = 1.0;
        }
    }
    Tensor::from_data(
        TensorData::new(data, [samples.len(), classes, d, h, w]),
        device,
    )
}
