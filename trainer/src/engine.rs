//! MSNet trained with burn, as an [`Engine`] of `msnet-training`'s loop.

use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, Device, Tensor};
use msnet::sample::Sample;
use msnet::{Model, Spec, Weights};
use msnet_training::{Engine, TrainOptions};

use crate::infer::Predictor;
use crate::network::MsNet;
use crate::train::{adam, optimise};

/// The burn engine: the MSNet module on burn's autodiff device and burn's Adam (β 0.9/0.999,
/// ε `opts.adam_epsilon`), whose state a checkpoint keeps in `optimizer.bpk` (burnpack).
pub struct BurnEngine {
    spec: Spec,
    /// `None` only while a step has the module (burn's optimiser takes it by value).
    model: Option<MsNet>,
    optimizer: ModuleOptimizer,
    epsilon: f32,
    /// The inference device (validation); `autodiff` is it with gradients.
    device: Device,
    autodiff: Device,
}

impl BurnEngine {
    /// MSNet with `weights` (checked against `spec` by the caller, e.g. fresh from
    /// `msnet::weights::init`) on `device` (see [`crate::device::device`]), and a fresh Adam.
    pub fn new(spec: &Spec, weights: &Weights, opts: &TrainOptions, device: Device) -> Self {
        let autodiff = device.clone().autodiff();
        Self {
            spec: spec.clone(),
            model: Some(MsNet::from_weights(spec, weights, &autodiff)),
            optimizer: adam(opts.adam_epsilon),
            epsilon: opts.adam_epsilon,
            device,
            autodiff,
        }
    }

    fn model(&self) -> &MsNet {
        self.model
            .as_ref()
            .unwrap_or_else(|| unreachable!("the module is back after every step"))
    }
}

impl Engine for BurnEngine {
    fn name(&self) -> &'static str {
        "burn"
    }

    fn describe(&self) -> String {
        crate::device::describe()
    }

    fn optimizer_file(&self) -> &'static str {
        "optimizer.bpk"
    }

    fn step(&mut self, batch: &[&Sample], lr: f64) -> Result<f64, f64> {
        let model = self
            .model
            .take()
            .unwrap_or_else(|| unreachable!("the module is back after every step"));
        let spec = &self.spec;
        let forward = |m: &MsNet, x: Tensor<5>| m.forward(spec, x);
        let (model, loss) = optimise(
            model,
            &forward,
            batch,
            spec.config.classes,
            &self.autodiff,
            lr,
            &mut self.optimizer,
        );
        self.model = Some(model);
        loss
    }

    fn weights(&self) -> Weights {
        self.model().to_weights()
    }

    fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        self.optimizer
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| format!("{e:?}"))
    }

    fn restore(&mut self, weights: &Weights, optimizer_state: &[u8]) -> Result<(), String> {
        weights.check(&self.spec).map_err(|e| e.to_string())?;
        let optimizer = adam(self.epsilon)
            .from_bytes(Bytes::from_bytes_vec(optimizer_state.to_vec()))
            .map_err(|e| format!("corrupt optimizer state: {e:?}"))?;
        self.optimizer = optimizer;
        self.model = Some(MsNet::from_weights(&self.spec, weights, &self.autodiff));
        Ok(())
    }

    fn predict(&mut self, samples: &[&Sample]) -> Vec<Vec<u8>> {
        let current = Model {
            spec: self.spec.clone(),
            weights: self.weights(),
        };
        Predictor::new(&current, self.device.clone()).labels(samples)
    }
}
