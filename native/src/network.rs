//! The network as the native engine holds it: the typed graph recorded once at the training
//! input size, its live nodes, and the weights in the kernels' layout; and the forward pass
//! over a batch, every node's value kept in a [`Workspace`] for the reverse sweep.

use std::collections::HashMap;

use msnet::ir::{Graph, NodeId, Op, Shape};
use msnet::spec::ConvSpec;
use msnet::weights::{from_kernel_layout, to_kernel_layout};
use msnet::{Spec, Weights};
use msnet_runtime::Parallel;
use msnet_runtime::kernels::conv::{self, ConvShape};
use msnet_runtime::kernels::resample::{self, Grid};
use msnet_runtime::kernels::{elementwise, layout, softmax};

use crate::parallel::{for_sample_rows, for_units, memory_bound_rows};

/// A grid-transfer kernel of the runtime (`avg_pool`, `prolong`).
type GridKernel = fn(&[f32], &Grid, std::ops::Range<usize>, &mut [f32]);

/// One network: the graph, what the reverse sweep visits, and the weights.
pub struct Network {
    pub(crate) spec: Spec,
    pub(crate) graph: Graph,
    /// The nodes the output depends on, in execution order, without the input.
    pub(crate) order: Vec<NodeId>,
    /// Whether a node's value depends on a weight, so that the loss has a gradient for it.
    pub(crate) needs_grad: Vec<bool>,
    /// Every layer's weights in the kernel layout (`msnet::weights::to_kernel_layout`).
    pub(crate) params: Vec<Vec<f32>>,
    /// Convolutions whose only reader is a ReLU: the ReLU node runs the convolution with the
    /// kernel's fused ReLU, and the convolution's own value is never stored (its backward
    /// reads its input, the ReLU's reads its output).
    pub(crate) fused: Vec<bool>,
}

impl Network {
    /// The network of `spec` with these weights (checked against the spec).
    pub fn new(spec: &Spec, weights: &Weights) -> Result<Self, msnet::weights::WeightsError> {
        weights.check(spec)?;
        let graph = Graph::record(spec);
        let live = graph.live();
        let order: Vec<NodeId> = (1..graph.nodes.len()).filter(|&i| live[i]).collect();
        let mut needs_grad = vec![false; graph.nodes.len()];
        for (id, node) in graph.nodes.iter().enumerate() {
            needs_grad[id] =
                matches!(node.op, Op::Conv(_)) || node.inputs.iter().any(|&i| needs_grad[i]);
        }
        let mut readers = vec![Vec::new(); graph.nodes.len()];
        for &id in &order {
            for &i in &graph.nodes[id].inputs {
                readers[i].push(id);
            }
        }
        let fused = (0..graph.nodes.len())
            .map(|id| {
                matches!(graph.nodes[id].op, Op::Conv(_))
                    && id != graph.output
                    && matches!(readers[id][..], [r] if graph.nodes[r].op == Op::Relu)
            })
            .collect();
        let params = spec
            .convs
            .iter()
            .zip(&weights.tensors)
            .map(|(c, w)| to_kernel_layout(c, w))
            .collect();
        Ok(Self {
            spec: spec.clone(),
            graph,
            order,
            needs_grad,
            params,
            fused,
        })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The weights in the file layout.
    pub fn weights(&self) -> Weights {
        let tensors = self
            .spec
            .convs
            .iter()
            .zip(&self.params)
            .map(|(c, k)| from_kernel_layout(c, k))
            .collect();
        Weights { tensors }
    }

    /// Values per sample of the input image (channels first, as [`msnet::sample::Sample`]).
    pub fn input_len(&self) -> usize {
        self.graph.nodes[0].shape.len()
    }

    /// The output's shape per sample (`[classes][voxels]`, channels first).
    pub fn output_shape(&self) -> Shape {
        self.graph.nodes[self.graph.output].shape
    }

    /// Runs the batch of channels-first images `images` (each [`Self::input_len`] values)
    /// forward, keeping every node's value in `ws`, and returns the class probabilities:
    /// per sample `[classes][voxels]`, samples one after another.
    pub fn forward<'w>(
        &self,
        ws: &'w mut Workspace,
        images: &[&[f32]],
        par: &dyn Parallel,
    ) -> &'w [f32] {
        ws.prepare(self, images.len());
        let input = &mut ws.values[0];
        for (dst, img) in input.chunks_exact_mut(self.input_len()).zip(images) {
            dst.copy_from_slice(img);
        }
        for &id in &self.order {
            if self.fused[id] {
                continue;
            }
            let mut out = std::mem::take(&mut ws.values[id]);
            self.run_node(id, &ws.values, &mut out, par);
            ws.values[id] = out;
        }
        &ws.values[self.graph.output]
    }

    /// A layer's convolution shape for one sample of input shape `x`.
    pub(crate) fn conv_shape(&self, layer: &ConvSpec, x: Shape) -> ConvShape {
        ConvShape {
            dims: self.graph.dims,
            input: x.spatial,
            cin: layer.in_channels,
            cout: layer.out_channels,
            stride: layer.stride,
        }
    }

    /// The grid of a value of shape `x`, for pooling and prolongation.
    pub(crate) fn grid(&self, x: Shape) -> Grid {
        Grid {
            dims: self.graph.dims,
            size: x.spatial,
            channels: x.channels,
        }
    }

    /// Layer `layer` applied to node `x`'s value, with the ReLU fused if `relu`.
    fn conv_forward(
        &self,
        layer: &ConvSpec,
        x: NodeId,
        values: &[Vec<f32>],
        relu: bool,
        out: &mut [f32],
        par: &dyn Parallel,
    ) {
        let shape = self.conv_shape(layer, self.graph.nodes[x].shape);
        let (x, w) = (values[x].as_slice(), &self.params[layer.index]);
        let (in_len, rows) = (shape.input_len(), shape.rows());
        let row_len = shape.output_len() / rows;
        for_sample_rows(par, rows, row_len, 1, out, |b, r, o| {
            conv::conv(&shape, &x[b * in_len..][..in_len], w, relu, r, o);
        });
    }

    fn run_node(&self, id: NodeId, values: &[Vec<f32>], out: &mut [f32], par: &dyn Parallel) {
        let node = &self.graph.nodes[id];
        let arg = |k: usize| values[node.inputs[k]].as_slice();
        let x_shape = || self.graph.nodes[node.inputs[0]].shape;
        let elementwise2 = |f: fn(&[f32], &[f32], &mut [f32]), out: &mut [f32]| {
            let (a, b) = (arg(0), arg(1));
            for_units(par, out.len(), 1, out, |r, o| f(&a[r.clone()], &b[r], o));
        };
        match &node.op {
            Op::Input => unreachable!("the input is not in the execution order"),
            Op::Normalize { mean, std } => {
                let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
                let len = node.shape.len();
                for (x, o) in arg(0).chunks_exact(len).zip(out.chunks_exact_mut(len)) {
                    layout::normalize(x, mean, &inv, o);
                }
            }
            Op::Conv(layer) => self.conv_forward(layer, node.inputs[0], values, false, out, par),
            Op::Relu if self.fused[node.inputs[0]] => {
                let conv = &self.graph.nodes[node.inputs[0]];
                let Op::Conv(layer) = &conv.op else {
                    unreachable!("only convolutions are fused")
                };
                self.conv_forward(layer, conv.inputs[0], values, true, out, par);
            }
            Op::Relu => {
                let x = arg(0);
                for_units(par, out.len(), 1, out, |r, o| elementwise::relu(&x[r], o));
            }
            Op::Add => elementwise2(|a, b, o| elementwise::add_scaled(a, b, 1.0, o), out),
            Op::Sub => elementwise2(|a, b, o| elementwise::add_scaled(a, b, -1.0, o), out),
            Op::Mul => elementwise2(elementwise::mul, out),
            Op::Affine { scale, shift } => {
                let x = arg(0);
                for_units(par, out.len(), 1, out, |r, o| {
                    elementwise::affine(&x[r], *scale, *shift, o)
                });
            }
            Op::Square => {
                let x = arg(0);
                for_units(par, out.len(), 1, out, |r, o| {
                    elementwise::scaled_square(&x[r], 1.0, o)
                });
            }
            Op::PhaseSoftmax { phases } => {
                let (x, c) = (arg(0), node.shape.channels);
                for_units(par, out.len() / c, c, out, |r, o| {
                    softmax::phase_softmax(&x[r.start * c..r.end * c], c, *phases, o)
                });
            }
            Op::AvgPool | Op::Prolong => {
                let grid = self.grid(x_shape());
                let x = arg(0);
                let in_len = x_shape().len();
                let (rows, kernel): (usize, GridKernel) = if node.op == Op::AvgPool {
                    (grid.pooled_rows(), resample::avg_pool)
                } else {
                    (grid.prolonged_rows(), resample::prolong)
                };
                let row_len = node.shape.len() / rows;
                for_sample_rows(
                    par,
                    rows,
                    row_len,
                    memory_bound_rows(row_len),
                    out,
                    |b, r, o| kernel(&x[b * in_len..][..in_len], &grid, r, o),
                );
            }
            Op::ClassSoftmax => {
                let (x, len) = (arg(0), node.shape.len());
                let classes = node.shape.channels;
                for_units(par, out.len() / len, len, out, |r, o| {
                    for (b, o) in r.zip(o.chunks_exact_mut(len)) {
                        softmax::class_softmax(&x[b * len..][..len], classes, o);
                    }
                });
            }
        }
    }
}

/// The memory of one batch size: every live node's value (forward), gradients handed from
/// node to node (reverse), and the buffers of the convolution backward. Allocated by the
/// first pass at a batch size and reused after, so a training step allocates nothing once
/// warm.
pub struct Workspace {
    pub(crate) batch: usize,
    /// Per node: `batch × shape.len()` values in the node's layout (channels last, but the
    /// input and the class probabilities channels first); empty for dead nodes.
    pub(crate) values: Vec<Vec<f32>>,
    /// Per node: its gradient while the reverse sweep has one for it.
    pub(crate) grads: Vec<Option<Vec<f32>>>,
    /// Gradient buffers not in use, by length.
    free: HashMap<usize, Vec<Vec<f32>>>,
    /// An overwriting kernel's result before it is added to a gradient.
    pub(crate) scratch: Vec<f32>,
    /// A stride-2 output gradient spread onto its input grid.
    pub(crate) spread: Vec<f32>,
    /// Weight-gradient partial sums, one block per (sample, row block).
    pub(crate) partials: Vec<f32>,
    /// Per layer: the flipped kernel of its data gradient.
    pub(crate) flipped: Vec<Vec<f32>>,
    /// Per layer: the loss's gradient with respect to its kernel-layout weights.
    pub(crate) param_grads: Vec<Vec<f32>>,
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            batch: 0,
            values: Vec::new(),
            grads: Vec::new(),
            free: HashMap::new(),
            scratch: Vec::new(),
            spread: Vec::new(),
            partials: Vec::new(),
            flipped: Vec::new(),
            param_grads: Vec::new(),
        }
    }

    /// Sizes the value buffers for `batch` samples of `net`'s graph.
    fn prepare(&mut self, net: &Network, batch: usize) {
        let nodes = &net.graph.nodes;
        if self.values.len() != nodes.len() {
            self.values = vec![Vec::new(); nodes.len()];
            self.grads = vec![None; nodes.len()];
            self.free.clear();
        }
        if self.batch != batch {
            self.batch = batch;
            self.values[0].resize(batch * nodes[0].shape.len(), 0.0);
            for &id in &net.order {
                let len = if net.fused[id] {
                    0
                } else {
                    nodes[id].shape.len()
                };
                self.values[id].resize(batch * len, 0.0);
            }
            self.free.clear();
        }
        self.grads.iter_mut().for_each(|g| *g = None);
    }

    /// A gradient buffer of `len` values (contents arbitrary).
    pub(crate) fn take_buffer(&mut self, len: usize) -> Vec<f32> {
        self.free
            .get_mut(&len)
            .and_then(Vec::pop)
            .unwrap_or_else(|| vec![0.0; len])
    }

    /// Returns a gradient buffer for reuse.
    pub(crate) fn give_back(&mut self, buffer: Vec<f32>) {
        self.free.entry(buffer.len()).or_default().push(buffer);
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}
