//! The native forward pass as the reference of a golden bundle: what `msnet-run finetune`
//! stores beside the model it trained, where no burn is linked.

use msnet::sample::Sample;
use msnet::{Spec, Weights};
use msnet_eval::golden::Reference;

use crate::trainer::{NativeError, NativeOptions, NativeTrainer};

/// A model's weights, run forward by the native engine on one thread at any input size.
pub struct NativeReference {
    spec: Spec,
    weights: Weights,
}

impl NativeReference {
    /// Checks that `weights` fit `spec` (the one failure [`Reference::forward`] cannot report).
    pub fn new(spec: &Spec, weights: &Weights) -> Result<Self, NativeError> {
        NativeTrainer::new(spec, weights, NativeOptions::default())?;
        Ok(Self {
            spec: spec.clone(),
            weights: weights.clone(),
        })
    }
}

impl Reference for NativeReference {
    fn name(&self) -> String {
        format!(
            "msnet-native forward pass (f32, one thread, {} {}), unfused",
            msnet_runtime::kernels::conv::path(),
            std::env::consts::ARCH
        )
    }

    fn forward(&self, input: &[f32], size: [usize; 3]) -> Vec<f32> {
        let mut config = self.spec.config.clone();
        config.input_size = size;
        let spec = Spec::new(&config);
        // The weights were checked against this network in `new`; the input size does not
        // change their shapes, and one thread starts no worker.
        let mut engine = NativeTrainer::new(&spec, &self.weights, NativeOptions::default())
            .expect("weights checked against this network in NativeReference::new");
        let sample = Sample {
            name: "golden".into(),
            channels: config.in_channels,
            shape: size,
            image: input.to_vec(),
            labels: vec![0; size.iter().product()],
        };
        engine.probabilities(&[&sample]).swap_remove(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference is the engine's own forward pass: the same probabilities as a training
    /// session's, at the config's size and at another.
    #[test]
    fn forward_matches_the_trainer_and_runs_at_any_size() {
        let config = msnet::Config::new(2, 1, 3);
        let spec = Spec::new(&config);
        let weights = msnet::weights::init(&spec, 3, Default::default());
        let reference = NativeReference::new(&spec, &weights).unwrap();
        let size = [1, 32, 32];
        let input: Vec<f32> = (0..32 * 32).map(|i| (i % 17) as f32 / 17.0).collect();
        let mut small = config.clone();
        small.input_size = size;
        let small_spec = Spec::new(&small);
        let mut trainer =
            NativeTrainer::new(&small_spec, &weights, NativeOptions::default()).unwrap();
        let sample = Sample {
            name: "x".into(),
            channels: 1,
            shape: size,
            image: input.clone(),
            labels: vec![0; 32 * 32],
        };
        let expected = trainer.probabilities(&[&sample]).swap_remove(0);
        let got = reference.forward(&input, size);
        assert_eq!(got, expected);
        assert_eq!(got.len(), 3 * 32 * 32);
        let sum: f32 = (0..3).map(|c| got[c * 1024]).sum();
        assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        // A mismatched set of weights is refused up front.
        let other = Spec::new(&msnet::Config::new(2, 3, 3));
        assert!(NativeReference::new(&other, &weights).is_err());
    }
}
