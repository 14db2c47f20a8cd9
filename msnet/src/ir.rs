//! The typed graph of one MSNet forward pass: [`graph::forward`] recorded once into nodes
//! whose ops know their own output shapes and costs.
//!
//! Every engine is a pass over a [`Graph`]: [`crate::cost`] sums [`Op::cost`], the exporter
//! replays it onto ONNX nodes and plan ops with [`Graph::lower`], the native trainer runs it
//! forward and then backwards node by node. The V-cycle itself is still written only in
//! [`graph::forward`]; this module only records what that program does.
//!
//! Shapes exclude the batch: `[channels, D, H, W]` with `D = 1` in 2D. A shape rule that
//! fails is a bug in the program (the spec comes from a validated config), so recording
//! panics with the node's name rather than returning an error.

use crate::graph::{self, Lowering};
use crate::spec::{ConvKind, ConvSpec, Spec};

/// Index of a node in [`Graph::nodes`].
pub type NodeId = usize;

/// A value's shape without the batch axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub channels: usize,
    /// `[D, H, W]`; `D = 1` in 2D.
    pub spatial: [usize; 3],
}

impl Shape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        self.channels * self.spatial.iter().product::<usize>()
    }

    /// Never true for a shape the program builds.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `f` to every spatial axis of a `dims`-dimensional value (depth stays 1 in 2D).
    fn map_spatial(&self, dims: usize, f: impl Fn(usize) -> usize) -> Shape {
        let [d, h, w] = self.spatial;
        let d = if dims == 3 { f(d) } else { d };
        Shape {
            channels: self.channels,
            spatial: [d, f(h), f(w)],
        }
    }
}

/// Output length along one axis of a 3-tap, padding-1 convolution of stride `stride`:
/// `ceil(n / stride)`. The one definition of this rule in the workspace's host code (the
/// device runtime re-derives it independently when it validates an untrusted plan).
pub fn conv_output_size(n: usize, stride: usize) -> usize {
    n.div_ceil(stride)
}

/// One operation of the MSNet program (see [`Lowering`] for each op's meaning).
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The image, `[in_channels, D, H, W]`, intensities in `[0, 1]`.
    Input,
    Normalize {
        mean: Vec<f32>,
        std: Vec<f32>,
    },
    /// A learnable convolution or transposed convolution (padding 1, the layer's stride).
    Conv(ConvSpec),
    Relu,
    Add,
    Sub,
    Mul,
    /// `scale * x + shift`.
    Affine {
        scale: f32,
        shift: f32,
    },
    Square,
    PhaseSoftmax {
        phases: usize,
    },
    AvgPool,
    Prolong,
    ClassSoftmax,
}

/// Work and traffic of one op at batch 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCost {
    /// Multiply-adds of convolutions.
    pub macs: u64,
    /// Floating-point operations (2 per multiply-add, plus the elementwise work).
    pub flops: u64,
    /// Bytes read and written (f32 activations and weights, each touched once).
    pub bytes: u64,
}

impl Op {
    /// Short name of the op kind, for node names and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Normalize { .. } => "normalize",
            Op::Conv(l) if l.kind == ConvKind::ConvTranspose => "conv_transpose",
            Op::Conv(_) => "conv",
            Op::Relu => "relu",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Affine { .. } => "affine",
            Op::Square => "square",
            Op::PhaseSoftmax { .. } => "phase_softmax",
            Op::AvgPool => "avg_pool",
            Op::Prolong => "prolong",
            Op::ClassSoftmax => "class_softmax",
        }
    }

    /// Number of inputs the op takes.
    pub fn arity(&self) -> usize {
        match self {
            Op::Input => 0,
            Op::Add | Op::Sub | Op::Mul => 2,
            _ => 1,
        }
    }

    /// The output shape for these input shapes in a `dims`-dimensional network, or why the
    /// inputs do not fit the op.
    pub fn output_shape(&self, dims: usize, inputs: &[Shape]) -> Result<Shape, String> {
        if inputs.len() != self.arity() {
            return Err(format!(
                "{} takes {} inputs, got {}",
                self.kind(),
                self.arity(),
                inputs.len()
            ));
        }
        let x = inputs.first().copied();
        let x = || x.ok_or_else(|| "input has no shape rule".to_string());
        match self {
            Op::Input => Err("the input's shape is given, not derived".into()),
            Op::Normalize { mean, std } => {
                let x = x()?;
                if mean.len() != x.channels || std.len() != x.channels {
                    return Err(format!(
                        "normalisation has {} means and {} stds for {} channels",
                        mean.len(),
                        std.len(),
                        x.channels
                    ));
                }
                Ok(x)
            }
            Op::Conv(l) => {
                let x = x()?;
                if x.channels != l.in_channels {
                    return Err(format!(
                        "{} takes {} channels, got {}",
                        l.name, l.in_channels, x.channels
                    ));
                }
                let mut out = x.map_spatial(dims, |n| conv_output_size(n, l.stride));
                out.channels = l.out_channels;
                Ok(out)
            }
            Op::Add | Op::Sub | Op::Mul => {
                if inputs[0] != inputs[1] {
                    return Err(format!(
                        "{} of different shapes {:?} and {:?}",
                        self.kind(),
                        inputs[0],
                        inputs[1]
                    ));
                }
                Ok(inputs[0])
            }
            Op::PhaseSoftmax { phases } => {
                let x = x()?;
                if *phases == 0 || !x.channels.is_multiple_of(*phases) {
                    return Err(format!("{} channels in {phases} phases", x.channels));
                }
                Ok(x)
            }
            Op::AvgPool => Ok(x()?.map_spatial(dims, |n| n / 2)),
            Op::Prolong => Ok(x()?.map_spatial(dims, |n| n * 2)),
            Op::Relu | Op::Affine { .. } | Op::Square | Op::ClassSoftmax => x(),
        }
    }

    /// What the op costs at batch 1, given its input and output shapes.
    pub fn cost(&self, inputs: &[Shape], output: Shape) -> OpCost {
        let out = output.len() as u64;
        let read: u64 = inputs.iter().map(|s| s.len() as u64).sum();
        let mut bytes = 4 * (read + out);
        let (macs, flops) = match self {
            Op::Input => (0, 0),
            Op::Conv(l) => {
                bytes += 4 * l.len() as u64;
                let macs = out * l.fan_in() as u64;
                (macs, 2 * macs)
            }
            Op::Normalize { .. } | Op::Affine { .. } | Op::Square => (0, 2 * out),
            Op::Relu | Op::Add | Op::Sub | Op::Mul => (0, out),
            // max, subtract, exp (counted as one), sum, divide.
            Op::PhaseSoftmax { .. } | Op::ClassSoftmax => (0, 5 * out),
            Op::AvgPool => (0, read),
            // Two taps per axis, a multiply-add each.
            Op::Prolong => (0, out * 2 * 2 * 3),
        };
        OpCost { macs, flops, bytes }
    }
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Unique within the graph: `{layer}_{id}` for convolutions (a layer can be applied
    /// several times), `{kind}_{id}` otherwise.
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
    /// Computed by the op when the node was added.
    pub shape: Shape,
}

/// The recorded forward pass of one network at its configured input size.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// 2 or 3 spatial axes.
    pub dims: usize,
    /// In execution order: every input of a node comes before it.
    pub nodes: Vec<Node>,
    /// The node holding the class probabilities.
    pub output: NodeId,
}

impl Graph {
    /// Records [`graph::forward`] for `spec` at `spec.config.input_size`.
    pub fn record(spec: &Spec) -> Graph {
        Self::record_at(spec, spec.config.input_size)
    }

    /// Records [`graph::forward`] for `spec` at the input size `size = [D, H, W]`.
    pub fn record_at(spec: &Spec, size: [usize; 3]) -> Graph {
        let cfg = &spec.config;
        let mut recorder = Recorder {
            graph: Graph {
                dims: cfg.dims,
                nodes: Vec::new(),
                output: 0,
            },
        };
        let input = Shape {
            channels: cfg.in_channels,
            spatial: size,
        };
        recorder.graph.nodes.push(Node {
            name: "input".into(),
            op: Op::Input,
            inputs: Vec::new(),
            shape: input,
        });
        let output = graph::forward(&mut recorder, spec, &0);
        recorder.graph.output = output;
        recorder.graph
    }

    /// Shapes of a node's inputs.
    pub fn input_shapes(&self, node: &Node) -> Vec<Shape> {
        node.inputs.iter().map(|&i| self.nodes[i].shape).collect()
    }

    /// The cost of every node, summed.
    pub fn cost(&self) -> OpCost {
        self.nodes.iter().fold(OpCost::default(), |acc, n| {
            let c = n.op.cost(&self.input_shapes(n), n.shape);
            OpCost {
                macs: acc.macs + c.macs,
                flops: acc.flops + c.flops,
                bytes: acc.bytes + c.bytes,
            }
        })
    }

    /// For each node, whether the output depends on it.
    pub fn live(&self) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        live[self.output] = true;
        for (id, n) in self.nodes.iter().enumerate().rev() {
            if live[id] {
                for &i in &n.inputs {
                    live[i] = true;
                }
            }
        }
        live
    }

    /// Replays the graph onto a lowering, in node order: the same calls, in the same order,
    /// as [`graph::forward`] makes. Returns the value of the output node.
    pub fn lower<B: Lowering>(&self, b: &mut B, image: B::Value) -> B::Value {
        let mut values: Vec<Option<B::Value>> = vec![None; self.nodes.len()];
        values[0] = Some(image);
        for (id, node) in self.nodes.iter().enumerate().skip(1) {
            let arg = |k: usize| {
                values[node.inputs[k]]
                    .clone()
                    .unwrap_or_else(|| unreachable!("inputs precede their readers"))
            };
            let v = match &node.op {
                Op::Input => unreachable!("the input is node 0"),
                Op::Normalize { mean, std } => b.normalize(&arg(0), mean, std),
                Op::Conv(l) => b.conv(l, &arg(0)),
                Op::Relu => b.relu(&arg(0)),
                Op::Add => b.add(&arg(0), &arg(1)),
                Op::Sub => b.sub(&arg(0), &arg(1)),
                Op::Mul => b.mul(&arg(0), &arg(1)),
                Op::Affine { scale, shift } => b.affine(&arg(0), *scale, *shift),
                Op::Square => b.square(&arg(0)),
                Op::PhaseSoftmax { phases } => b.phase_softmax(&arg(0), *phases),
                Op::AvgPool => b.avg_pool(&arg(0)),
                Op::Prolong => b.prolong(&arg(0)),
                Op::ClassSoftmax => b.class_softmax(&arg(0)),
            };
            values[id] = Some(v);
        }
        values[self.output]
            .take()
            .unwrap_or_else(|| unreachable!("the output is a node"))
    }
}

/// The lowering that records: values are node ids.
struct Recorder {
    graph: Graph,
}

impl Recorder {
    fn push(&mut self, op: Op, inputs: &[NodeId]) -> NodeId {
        let id = self.graph.nodes.len();
        let name = match &op {
            Op::Conv(l) => format!("{}_{id}", l.name.trim_end_matches(".weight")),
            other => format!("{}_{id}", other.kind()),
        };
        let shapes: Vec<Shape> = inputs.iter().map(|&i| self.graph.nodes[i].shape).collect();
        let shape = op
            .output_shape(self.graph.dims, &shapes)
            .unwrap_or_else(|e| panic!("MSNet program, node {name}: {e}"));
        self.graph.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
            shape,
        });
        id
    }
}

impl Lowering for Recorder {
    type Value = NodeId;

    fn normalize(&mut self, x: &NodeId, mean: &[f32], std: &[f32]) -> NodeId {
        let op = Op::Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        };
        self.push(op, &[*x])
    }
    fn conv(&mut self, layer: &ConvSpec, x: &NodeId) -> NodeId {
        self.push(Op::Conv(layer.clone()), &[*x])
    }
    fn relu(&mut self, x: &NodeId) -> NodeId {
        self.push(Op::Relu, &[*x])
    }
    fn add(&mut self, a: &NodeId, b: &NodeId) -> NodeId {
        self.push(Op::Add, &[*a, *b])
    }
    fn sub(&mut self, a: &NodeId, b: &NodeId) -> NodeId {
        self.push(Op::Sub, &[*a, *b])
    }
    fn mul(&mut self, a: &NodeId, b: &NodeId) -> NodeId {
        self.push(Op::Mul, &[*a, *b])
    }
    fn affine(&mut self, x: &NodeId, scale: f32, shift: f32) -> NodeId {
        self.push(Op::Affine { scale, shift }, &[*x])
    }
    fn square(&mut self, x: &NodeId) -> NodeId {
        self.push(Op::Square, &[*x])
    }
    fn phase_softmax(&mut self, x: &NodeId, phases: usize) -> NodeId {
        self.push(Op::PhaseSoftmax { phases }, &[*x])
    }
    fn avg_pool(&mut self, x: &NodeId) -> NodeId {
        self.push(Op::AvgPool, &[*x])
    }
    fn prolong(&mut self, x: &NodeId) -> NodeId {
        self.push(Op::Prolong, &[*x])
    }
    fn class_softmax(&mut self, x: &NodeId) -> NodeId {
        self.push(Op::ClassSoftmax, &[*x])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn shape(channels: usize, spatial: [usize; 3]) -> Shape {
        Shape { channels, spatial }
    }

    #[test]
    fn conv_output_size_is_the_ceiling() {
        assert_eq!(conv_output_size(7, 1), 7);
        assert_eq!(conv_output_size(7, 2), 4);
        assert_eq!(conv_output_size(8, 2), 4);
        assert_eq!(conv_output_size(1, 2), 1);
    }

    #[test]
    fn ops_derive_their_shapes() {
        let spec = Spec::new(&Config::new(2, 3, 3));
        let restrict = Op::Conv(spec.restrict_u().clone());
        assert_eq!(
            restrict.output_shape(2, &[shape(16, [1, 9, 8])]),
            Ok(shape(16, [1, 5, 4]))
        );
        assert_eq!(
            Op::Prolong.output_shape(3, &[shape(4, [2, 3, 5])]),
            Ok(shape(4, [4, 6, 10]))
        );
        assert_eq!(
            Op::AvgPool.output_shape(2, &[shape(4, [1, 7, 6])]),
            Ok(shape(4, [1, 3, 3]))
        );
        let head = Op::Conv(spec.head().clone());
        assert!(head.output_shape(2, &[shape(1, [1, 8, 8])]).is_err());
        assert!(
            Op::Add
                .output_shape(2, &[shape(4, [1, 8, 8]), shape(4, [1, 4, 8])])
                .is_err()
        );
        assert!(
            Op::PhaseSoftmax { phases: 3 }
                .output_shape(2, &[shape(16, [1, 8, 8])])
                .is_err()
        );
    }

    #[test]
    fn recorded_graph_is_topological_and_ends_in_class_probabilities() {
        for (dims, classes) in [(2, 3), (3, 4)] {
            let spec = Spec::new(&Config::new(dims, 1, classes));
            let g = Graph::record(&spec);
            for (id, n) in g.nodes.iter().enumerate() {
                assert!(n.inputs.iter().all(|&i| i < id), "{}", n.name);
                assert_eq!(n.inputs.len(), n.op.arity(), "{}", n.name);
            }
            let out = &g.nodes[g.output];
            assert_eq!(out.op, Op::ClassSoftmax);
            assert_eq!(out.shape.channels, classes);
            assert_eq!(out.shape.spatial, spec.config.input_size);
            let dead: Vec<&str> = g
                .live()
                .iter()
                .zip(&g.nodes)
                .filter(|(live, _)| !**live)
                .map(|(_, n)| n.name.as_str())
                .collect();
            // Only the coarsest grid's right-hand side `F = R(r) + A(u0, v0)` is dead: the up
            // sweep reads `F` on the finer grids alone. Passes drop these 11 nodes.
            let coarsest = format!("down.{}.", spec.config.grids);
            let dead_convs: Vec<&str> = dead
                .iter()
                .filter(|n| n.starts_with("down."))
                .map(|n| n.rsplit_once('_').map_or(*n, |(layer, _)| layer))
                .collect();
            let want: Vec<String> = ["L1", "L2", "T1", "T2"]
                .iter()
                .map(|p| format!("{coarsest}{p}"))
                .collect();
            assert_eq!(dead_convs, want);
            assert_eq!(dead.len(), 11, "{dead:?}");
        }
    }

    /// A lowering that counts its calls by kind, to check `lower` replays `forward`.
    struct Trace(Vec<&'static str>);

    impl Lowering for Trace {
        type Value = ();
        fn normalize(&mut self, _: &(), _: &[f32], _: &[f32]) {
            self.0.push("normalize");
        }
        fn conv(&mut self, l: &ConvSpec, _: &()) {
            self.0.push(if l.kind == ConvKind::Conv {
                "conv"
            } else {
                "conv_transpose"
            });
        }
        fn relu(&mut self, _: &()) {
            self.0.push("relu");
        }
        fn add(&mut self, _: &(), _: &()) {
            self.0.push("add");
        }
        fn sub(&mut self, _: &(), _: &()) {
            self.0.push("sub");
        }
        fn mul(&mut self, _: &(), _: &()) {
            self.0.push("mul");
        }
        fn affine(&mut self, _: &(), _: f32, _: f32) {
            self.0.push("affine");
        }
        fn square(&mut self, _: &()) {
            self.0.push("square");
        }
        fn phase_softmax(&mut self, _: &(), _: usize) {
            self.0.push("phase_softmax");
        }
        fn avg_pool(&mut self, _: &()) {
            self.0.push("avg_pool");
        }
        fn prolong(&mut self, _: &()) {
            self.0.push("prolong");
        }
        fn class_softmax(&mut self, _: &()) {
            self.0.push("class_softmax");
        }
    }

    #[test]
    fn lowering_the_graph_replays_the_program() {
        let spec = Spec::new(&Config::new(2, 3, 3));
        let mut direct = Trace(Vec::new());
        graph::forward(&mut direct, &spec, &());
        let g = Graph::record(&spec);
        let mut replayed = Trace(Vec::new());
        g.lower(&mut replayed, ());
        assert_eq!(direct.0, replayed.0);
        let kinds: Vec<&str> = g.nodes[1..].iter().map(|n| n.op.kind()).collect();
        assert_eq!(kinds, direct.0);
    }
}
