//! Where a network stands on one batch: how saturated each phase softmax is, how the class
//! probabilities are spread, and how large each layer's gradient is next to its weights.
//!
//! These are the numbers that tell why a run sits on a plateau. A phase softmax whose groups
//! are one-hot passes almost no gradient back (its Jacobian is `p (1 − p)`), so every layer
//! before it stops learning while the head still does; a class softmax near one class on every
//! voxel gives the Dice loss a vanishing gradient for the small structures. The probe measures
//! both, on real data, without taking a step.

use msnet::ir::{Node, Op};
use msnet::sample::Sample;

use crate::network::{Network, Workspace};
use crate::trainer::{NativeError, NativeTrainer};

/// A group of phases counts as saturated when its largest probability exceeds this: the
/// softmax then passes back at most `1 − 0.99` of a gradient.
pub const SATURATED: f32 = 0.99;

/// One phase softmax on the probed batch.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseStats {
    /// The graph node's name.
    pub node: String,
    /// Largest and mean magnitude of its inputs (the energies divided by ε).
    pub max_abs_input: f32,
    pub mean_abs_input: f32,
    /// Fraction of the (voxel, feature) groups whose largest phase probability is above
    /// [`SATURATED`].
    pub saturated: f64,
}

/// One layer's gradient next to its weights (root mean squares over its tensor).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGradient {
    pub layer: String,
    pub weight_rms: f64,
    pub gradient_rms: f64,
}

/// What [`NativeTrainer::probe`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub loss: f64,
    /// Mean probability of each class over the batch's voxels.
    pub class_means: Vec<f64>,
    /// Share of the batch's voxels labelled with each class.
    pub class_shares: Vec<f64>,
    pub phases: Vec<PhaseStats>,
    pub layers: Vec<LayerGradient>,
}

fn rms(v: &[f32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    (v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Saturation statistics of a phase softmax over `x` (its input) and `p` (its output), both
/// channels last with `channels` values per voxel in `phases` groups.
fn phase_stats(node: &str, x: &[f32], p: &[f32], channels: usize, phases: usize) -> PhaseStats {
    let per_phase = channels / phases;
    let (mut saturated, mut groups) = (0usize, 0usize);
    for voxel in p.chunks_exact(channels) {
        for i in 0..per_phase {
            let top = (0..phases)
                .map(|n| voxel[n * per_phase + i])
                .fold(0.0f32, f32::max);
            saturated += usize::from(top > SATURATED);
            groups += 1;
        }
    }
    let abs = x.iter().map(|v| v.abs());
    PhaseStats {
        node: node.to_string(),
        max_abs_input: abs.clone().fold(0.0, f32::max),
        mean_abs_input: (abs.map(f64::from).sum::<f64>() / x.len().max(1) as f64) as f32,
        saturated: saturated as f64 / groups.max(1) as f64,
    }
}

/// Every phase softmax the last forward pass computed: its node, input, output and phase
/// count.
fn phase_softmaxes<'a>(
    net: &'a Network,
    ws: &'a Workspace,
) -> impl Iterator<Item = (&'a Node, &'a [f32], &'a [f32], usize)> {
    net.graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(id, node)| match node.op {
            Op::PhaseSoftmax { phases } if !ws.values[id].is_empty() => Some((
                node,
                ws.values[node.inputs[0]].as_slice(),
                ws.values[id].as_slice(),
                phases,
            )),
            _ => None,
        })
}

/// The largest magnitude of any phase softmax's input in the last forward pass: the
/// energies over ε, which explode when training leaves the range the network can learn in
/// (docs/results.md, ACDC).
pub(crate) fn largest_phase_input(net: &Network, ws: &Workspace) -> f32 {
    phase_softmaxes(net, ws)
        .flat_map(|(_, x, _, _)| x.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()))
}

impl NativeTrainer {
    /// The loss, each phase softmax's saturation, the class probabilities and every layer's
    /// gradient on `batch`, without changing the weights.
    pub fn probe(&mut self, batch: &[&Sample]) -> Result<Probe, NativeError> {
        let (loss, grads) = self.loss_and_gradients(batch)?;
        let weights = self.weights();
        let (net, ws) = self.network_and_workspace();
        let classes = net.spec().config.classes;
        let graph = &net.graph;
        let phases = phase_softmaxes(net, ws)
            .map(|(node, x, p, phases)| phase_stats(&node.name, x, p, node.shape.channels, phases))
            .collect();
        // The class probabilities are channels first per sample: [classes][voxels].
        let probs = &ws.values[graph.output];
        let voxels = graph.nodes[graph.output].shape.len() / classes;
        let mut class_means = vec![0.0; classes];
        let mut class_shares = vec![0.0; classes];
        for (sample, p) in batch.iter().zip(probs.chunks_exact(classes * voxels)) {
            for (c, plane) in p.chunks_exact(voxels).enumerate() {
                class_means[c] += plane.iter().map(|&v| f64::from(v)).sum::<f64>()
                    / (voxels * batch.len()) as f64;
            }
            for &l in &sample.labels {
                class_shares[usize::from(l)] += 1.0 / (voxels * batch.len()) as f64;
            }
        }
        let layers = net
            .spec()
            .convs
            .iter()
            .zip(weights.tensors.iter().zip(&grads))
            .map(|(c, (w, g))| LayerGradient {
                layer: c.name.clone(),
                weight_rms: rms(w),
                gradient_rms: rms(g),
            })
            .collect();
        Ok(Probe {
            loss,
            class_means,
            class_shares,
            phases,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_hot_group_is_saturated_and_a_flat_one_is_not() {
        // 2 voxels, 2 phases × 2 features (phase-major within a voxel).
        let p = [0.995, 0.5, 0.005, 0.5, 0.6, 0.999, 0.4, 0.001];
        let x = [4.0, 0.0, -4.0, 0.0, 0.2, 7.0, -0.2, -7.0];
        let s = phase_stats("phase", &x, &p, 4, 2);
        assert_eq!(s.saturated, 0.5);
        assert_eq!(s.max_abs_input, 7.0);
        assert!((s.mean_abs_input - 2.8).abs() < 1e-6);
    }

    #[test]
    fn rms_of_a_constant_is_its_magnitude() {
        assert!((rms(&[-3.0, 3.0, 3.0]) - 3.0).abs() < 1e-12);
        assert_eq!(rms(&[]), 0.0);
    }
}
