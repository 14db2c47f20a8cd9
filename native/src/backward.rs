//! The reverse sweep: from the gradient of the class probabilities back through every live
//! node, one vector-Jacobian rule per op ([`crate::vjp`], and the runtime's convolution,
//! weight-gradient and grid-transfer kernels), into the gradients of the kernel-layout
//! weights.
//!
//! Determinism: every gradient is a function of the batch alone, whatever the thread count.
//! Elementwise rules and convolutions compute each value independently of how the work is
//! split; weight gradients are summed per (sample, block of output rows), blocks fixed by the
//! shape, and the blocks are added in order.

use msnet::ir::{NodeId, Op};
use msnet_runtime::Parallel;
use msnet_runtime::kernels::conv::{self, ConvShape};
use msnet_runtime::kernels::conv_grad;
use msnet_runtime::kernels::resample;
use msnet_runtime::parallel::split;

use crate::network::{Network, Workspace};
use crate::parallel::{for_sample_rows, for_units};
use crate::vjp::{self, Mode};

/// Output positions per weight-gradient block: enough work to be worth a task, few enough
/// that a 112×112 sample splits into several blocks for the threads to share.
const WEIGHT_GRAD_POSITIONS: usize = 2048;

impl Network {
    /// Runs the reverse sweep after [`Network::forward`] on `ws`, starting from `dprobs`,
    /// the loss's gradient with respect to the class probabilities (the forward output's
    /// layout). Leaves the weight gradients in `ws` ([`Workspace::param_grads`]).
    pub fn backward(&self, ws: &mut Workspace, dprobs: Vec<f32>, par: &dyn Parallel) {
        if ws.param_grads.len() != self.params.len() {
            ws.param_grads = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
            ws.flipped = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        ws.param_grads.iter_mut().for_each(|g| g.fill(0.0));
        for (layer, (w, flipped)) in self.params.iter().zip(&mut ws.flipped).enumerate() {
            let c = &self.spec.convs[layer];
            vjp::data_grad_kernel(c.in_channels, c.out_channels, w, flipped);
        }
        ws.grads[self.graph.output] = Some(dprobs);
        for &id in self.order.iter().rev() {
            let Some(dy) = ws.grads[id].take() else {
                continue;
            };
            self.node_backward(id, &dy, ws, par);
            ws.give_back(dy);
        }
    }

    /// Hands node `id`'s output gradient `dy` to its inputs (and its layer's weights).
    fn node_backward(&self, id: NodeId, dy: &[f32], ws: &mut Workspace, par: &dyn Parallel) {
        let node = &self.graph.nodes[id];
        let input = |k: usize| node.inputs[k];
        match &node.op {
            Op::Input | Op::Normalize { .. } => {}
            Op::Conv(layer) => {
                let x_shape = self.graph.nodes[input(0)].shape;
                let shape = self.conv_shape(layer, x_shape);
                self.weight_grad(&shape, input(0), dy, layer.index, ws, par);
                if self.needs_grad[input(0)] {
                    self.data_grad(&shape, input(0), dy, layer.index, ws, par);
                }
            }
            Op::Relu => {
                let y = std::mem::take(&mut ws.values[id]);
                self.contribute(ws, input(0), par, |r, mode, dx| {
                    vjp::relu(&y[r.clone()], &dy[r], mode, dx)
                });
                ws.values[id] = y;
            }
            Op::Add | Op::Sub => {
                let sign = if node.op == Op::Add { 1.0 } else { -1.0 };
                for (k, scale) in [(0, 1.0), (1, sign)] {
                    self.contribute(ws, input(k), par, |r, mode, dx| {
                        vjp::scaled(&dy[r], scale, mode, dx)
                    });
                }
            }
            Op::Affine { scale, .. } => {
                self.contribute(ws, input(0), par, |r, mode, dx| {
                    vjp::scaled(&dy[r], *scale, mode, dx)
                });
            }
            Op::Mul => {
                for k in 0..2 {
                    let other = std::mem::take(&mut ws.values[input(1 - k)]);
                    self.contribute(ws, input(k), par, |r, mode, dx| {
                        vjp::mul(&other[r.clone()], &dy[r], mode, dx)
                    });
                    ws.values[input(1 - k)] = other;
                }
            }
            Op::Square => {
                let x = std::mem::take(&mut ws.values[input(0)]);
                self.contribute(ws, input(0), par, |r, mode, dx| {
                    vjp::square(&x[r.clone()], &dy[r], mode, dx)
                });
                ws.values[input(0)] = x;
            }
            Op::PhaseSoftmax { phases } => {
                let y = std::mem::take(&mut ws.values[id]);
                let c = node.shape.channels;
                self.contribute_units(ws, input(0), c, par, |r, mode, dx| {
                    let v = r.start * c..r.end * c;
                    vjp::phase_softmax(&y[v.clone()], &dy[v], c, *phases, mode, dx)
                });
                ws.values[id] = y;
            }
            Op::ClassSoftmax => {
                let y = std::mem::take(&mut ws.values[id]);
                let (len, classes) = (node.shape.len(), node.shape.channels);
                self.contribute_units(ws, input(0), len, par, |r, mode, dx| {
                    for (b, dx) in r.zip(dx.chunks_exact_mut(len)) {
                        let v = b * len..(b + 1) * len;
                        vjp::class_softmax(&y[v.clone()], &dy[v], classes, mode, dx);
                    }
                });
                ws.values[id] = y;
            }
            Op::AvgPool | Op::Prolong => {
                let x_shape = self.graph.nodes[input(0)].shape;
                let grid = self.grid(x_shape);
                let (in_len, out_len) = (x_shape.len(), node.shape.len());
                let adjoint: fn(&[f32], &resample::Grid, &mut [f32]) = if node.op == Op::AvgPool {
                    resample::avg_pool_adjoint
                } else {
                    resample::prolong_adjoint
                };
                self.overwrite(
                    ws,
                    input(0),
                    |dx| {
                        for_units(par, dx.len() / in_len, in_len, dx, |r, dx| {
                            for (b, dx) in r.zip(dx.chunks_exact_mut(in_len)) {
                                adjoint(&dy[b * out_len..][..out_len], &grid, dx);
                            }
                        });
                    },
                    par,
                );
            }
        }
    }

    /// Adds `rule(range, mode, dx_chunk)` into node `to`'s gradient, split over its values.
    fn contribute<F>(&self, ws: &mut Workspace, to: NodeId, par: &dyn Parallel, rule: F)
    where
        F: Fn(std::ops::Range<usize>, Mode, &mut [f32]) + Sync,
    {
        self.contribute_units(ws, to, 1, par, rule);
    }

    /// As [`Self::contribute`], split over units of `unit_len` values (a rule that needs
    /// whole pixels or whole samples gets them); `range` counts units.
    fn contribute_units<F>(
        &self,
        ws: &mut Workspace,
        to: NodeId,
        unit_len: usize,
        par: &dyn Parallel,
        rule: F,
    ) where
        F: Fn(std::ops::Range<usize>, Mode, &mut [f32]) + Sync,
    {
        let len = ws.batch * self.graph.nodes[to].shape.len();
        let (mut dx, mode) = match ws.grads[to].take() {
            Some(g) => (g, Mode::Add),
            None => (ws.take_buffer(len), Mode::Write),
        };
        for_units(par, len / unit_len, unit_len, &mut dx, |r, chunk| {
            rule(r, mode, chunk)
        });
        ws.grads[to] = Some(dx);
    }

    /// Puts the result of a kernel that overwrites its output (`kernel(dx)`) into node
    /// `to`'s gradient: straight in when it is the first contribution, else through the
    /// scratch buffer and an add.
    fn overwrite(
        &self,
        ws: &mut Workspace,
        to: NodeId,
        kernel: impl FnOnce(&mut [f32]),
        par: &dyn Parallel,
    ) {
        let len = ws.batch * self.graph.nodes[to].shape.len();
        match ws.grads[to].take() {
            None => {
                let mut dx = ws.take_buffer(len);
                kernel(&mut dx);
                ws.grads[to] = Some(dx);
            }
            Some(mut dx) => {
                let mut scratch = std::mem::take(&mut ws.scratch);
                scratch.resize(len, 0.0);
                kernel(&mut scratch);
                for_units(par, len, 1, &mut dx, |r, chunk| {
                    vjp::scaled(&scratch[r], 1.0, Mode::Add, chunk)
                });
                ws.scratch = scratch;
                ws.grads[to] = Some(dx);
            }
        }
    }

    /// Adds the gradient of layer `layer`'s kernel-layout weights for this use of it (input
    /// node `x`, output gradient `dy`) into `ws.param_grads[layer]`.
    fn weight_grad(
        &self,
        shape: &ConvShape,
        x: NodeId,
        dy: &[f32],
        layer: usize,
        ws: &mut Workspace,
        par: &dyn Parallel,
    ) {
        let batch = ws.batch;
        let (rows, [_, _, ow]) = (shape.rows(), shape.output());
        let (in_len, out_len, w_len) = (shape.input_len(), shape.output_len(), shape.weights_len());
        let row_len = out_len / rows;
        let block = (WEIGHT_GRAD_POSITIONS / ow).clamp(1, rows);
        let per_sample = rows.div_ceil(block);
        let tasks = batch * per_sample;
        let mut partials = std::mem::take(&mut ws.partials);
        partials.resize(tasks * w_len, 0.0);
        let xs = &ws.values[x];
        split(
            par,
            tasks,
            w_len,
            1,
            &mut partials[..tasks * w_len],
            |range, chunk| {
                for (task, part) in range.zip(chunk.chunks_exact_mut(w_len)) {
                    let (b, j) = (task / per_sample, task % per_sample);
                    let r = j * block..((j + 1) * block).min(rows);
                    let dy_rows =
                        &dy[b * out_len + r.start * row_len..b * out_len + r.end * row_len];
                    part.fill(0.0);
                    conv_grad::weight_grad(shape, &xs[b * in_len..][..in_len], dy_rows, r, part);
                }
            },
        );
        let dw = &mut ws.param_grads[layer];
        let sums = &partials;
        for_units(par, w_len, 1, dw, |r, chunk| {
            for t in 0..tasks {
                let part = &sums[t * w_len + r.start..t * w_len + r.end];
                chunk.iter_mut().zip(part).for_each(|(d, &p)| *d += p);
            }
        });
        ws.partials = partials;
    }

    /// Adds the gradient with respect to the convolution's input `x`: the stride-1
    /// convolution of `dy` (for stride 2, `dy` spread onto the input grid) with the layer's
    /// flipped kernel.
    fn data_grad(
        &self,
        shape: &ConvShape,
        x: NodeId,
        dy: &[f32],
        layer: usize,
        ws: &mut Workspace,
        par: &dyn Parallel,
    ) {
        let batch = ws.batch;
        let back = ConvShape {
            cin: shape.cout,
            cout: shape.cin,
            stride: 1,
            ..*shape
        };
        let mut spread = std::mem::take(&mut ws.spread);
        let source: &[f32] = if shape.stride == 1 {
            dy
        } else {
            let (z_len, out_len) = (back.input_len(), shape.output_len());
            spread.resize(batch * z_len, 0.0);
            for (b, z) in spread.chunks_exact_mut(z_len).enumerate() {
                vjp::spread_stride2(shape, &dy[b * out_len..][..out_len], z);
            }
            &spread
        };
        let flipped = std::mem::take(&mut ws.flipped[layer]);
        let (src_len, rows) = (back.input_len(), back.rows());
        let row_len = back.output_len() / rows;
        self.overwrite(
            ws,
            x,
            |dx| {
                for_sample_rows(par, rows, row_len, 1, dx, |b, r, o| {
                    conv::conv(
                        &back,
                        &source[b * src_len..][..src_len],
                        &flipped,
                        false,
                        r,
                        o,
                    );
                });
            },
            par,
        );
        ws.flipped[layer] = flipped;
        ws.spread = spread;
    }
}
