//! What the loop needs from an engine: one optimisation step, its state, and predictions.

use msnet::sample::Sample;

/// A training engine: the network's weights and optimiser state, stepped by the loop.
///
/// The loop ([`crate::train()`]) decides which samples each step sees and at which learning
/// rate, when to checkpoint, validate and stop; the engine computes. An engine is built by
/// its caller from fresh weights (`msnet::weights::init(spec, opts.seed, opts.init)`); on a
/// resume the loop replaces them with [`Engine::restore`].
pub trait Engine {
    /// Short name recorded in checkpoints and training records: "native", "burn".
    fn name(&self) -> &'static str;
    /// One line for logs and model cards (backend, threads, kernel path, arch).
    fn describe(&self) -> String;
    /// File name of the optimiser state inside a checkpoint directory ("optimizer.bpk" for burn).
    fn optimizer_file(&self) -> &'static str;
    /// One optimisation step on this mini-batch at learning rate `lr`: forward, the soft Dice
    /// loss, backward, Adam. Returns the loss. A non-finite loss (or gradient) leaves weights
    /// and optimiser state untouched and returns Err(loss).
    fn step(&mut self, batch: &[&Sample], lr: f64) -> Result<f64, f64>;
    /// The largest magnitude of a phase softmax's input (the v-update's energies over ε) in
    /// the last step's forward pass, where the engine measures it: when it grows by orders of
    /// magnitude the phase softmaxes saturate and the run ends on the background
    /// (docs/results.md, ACDC), so the progress report shows it.
    fn largest_phase_input(&self) -> Option<f32> {
        None
    }
    /// Current weights (file layout, spec.convs order).
    fn weights(&self) -> msnet::Weights;
    /// Optimiser state for a checkpoint (opaque bytes).
    fn optimizer_state(&self) -> Result<Vec<u8>, String>;
    /// Replaces weights and optimiser state with a checkpoint's (bytes from
    /// `optimizer_state` of the same engine).
    fn restore(&mut self, weights: &msnet::Weights, optimizer_state: &[u8]) -> Result<(), String>;
    /// Predicted class index per voxel for each sample (validation during training).
    fn predict(&mut self, samples: &[&Sample]) -> Vec<Vec<u8>>;
}
