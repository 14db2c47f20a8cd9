//! The native trainer as an engine of the shared training loop (`msnet-training`), which
//! owns batches, schedule, checkpoints, validation and stopping.

use msnet::Weights;
use msnet::sample::Sample;
use msnet_training::Engine;

use crate::trainer::NativeTrainer;

/// The checkpoint file of the native engine's Adam state ([`crate::adam`]).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

impl Engine for NativeTrainer {
    fn name(&self) -> &'static str {
        "native"
    }

    fn describe(&self) -> String {
        NativeTrainer::describe(self)
    }

    fn optimizer_file(&self) -> &'static str {
        OPTIMIZER_FILE
    }

    fn step(&mut self, batch: &[&Sample], lr: f64) -> Result<f64, f64> {
        NativeTrainer::step(self, batch, lr)
    }

    fn largest_phase_input(&self) -> Option<f32> {
        Some(NativeTrainer::largest_phase_input(self))
    }

    fn weights(&self) -> Weights {
        NativeTrainer::weights(self)
    }

    fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        NativeTrainer::optimizer_state(self).map_err(|e| e.to_string())
    }

    fn restore(&mut self, weights: &Weights, optimizer_state: &[u8]) -> Result<(), String> {
        NativeTrainer::restore(self, weights, optimizer_state).map_err(|e| e.to_string())
    }

    fn predict(&mut self, samples: &[&Sample]) -> Vec<Vec<u8>> {
        NativeTrainer::predict(self, samples)
    }
}
