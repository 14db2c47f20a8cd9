//! Inference with the burn network (the reference forward pass for evaluation and export
//! checks).

use burn::tensor::Device;
use msnet::sample::Sample;
use msnet::{Model, Spec};

use crate::batch;
use crate::network::MsNet;

/// A model placed on a device for inference.
pub struct Predictor {
    pub spec: Spec,
    net: MsNet,
    device: Device,
}

impl Predictor {
    pub fn new(model: &Model, device: Device) -> Self {
        Self {
            net: MsNet::from_weights(&model.spec, &model.weights, &device),
            spec: model.spec.clone(),
            device,
        }
    }

    /// Class probabilities of each sample, `[classes, D, H, W]` row-major.
    pub fn probabilities(&self, samples: &[&Sample]) -> Vec<Vec<f32>> {
        let images = batch::images(samples, &self.device);
        let probs = self.net.forward(&self.spec, images);
        let flat = probs
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_else(|e| unreachable!("probabilities are f32: {e:?}"));
        let per = flat.len() / samples.len();
        flat.chunks(per).map(<[f32]>::to_vec).collect()
    }

    /// Predicted class of every voxel of each sample.
    pub fn labels(&self, samples: &[&Sample]) -> Vec<Vec<u8>> {
        let classes = self.spec.config.classes;
        self.probabilities(samples)
            .iter()
            .map(|p| msnet_labels::argmax(p, classes))
            .collect()
    }
}

/// The burn forward pass as the reference of golden bundles and export self-checks.
impl msnet_eval::golden::Reference for Predictor {
    fn name(&self) -> String {
        format!(
            "msnet-trainer {}, {}",
            env!("CARGO_PKG_VERSION"),
            crate::device::describe()
        )
    }

    fn forward(&self, input: &[f32], size: [usize; 3]) -> Vec<f32> {
        let channels = self.spec.config.in_channels;
        let sample = Sample {
            name: "golden".into(),
            channels,
            shape: size,
            image: input.to_vec(),
            labels: vec![0; size.iter().product()],
        };
        self.probabilities(&[&sample]).remove(0)
    }
}
