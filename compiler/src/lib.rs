//! # msnet-compiler: the MSNet program compiled into a runtime plan
//!
//! This crate owns one pass over the network: [`msnet::graph::forward`] (the typed graph of
//! [`msnet::ir`]) compiled into the plan `msnet-runtime` executes (`model.msplan`, format in
//! [`msnet_runtime::format`]). `msnet export` calls it on a host, and `msnet-run finetune` on
//! the device after training, so it links neither tract nor burn. It must not define any part
//! of the network (that is `msnet`'s) or run a plan (that is `msnet-runtime`'s).
//!
//! Three steps:
//! 1. **Lowering**: [`PlanLowering`] records the program as a node list with shapes.
//! 2. **Rewrites** ([`RULES`], each a small function with its own test): a ReLU folds into
//!    the convolution feeding it; `s·x²` and `a + s·x` absorb the scalings of the FEM (`dt`,
//!    `λ`, `−½/ε`, `−α/ε`), so the FEM's elementwise chains become single passes; subtraction
//!    is `a + (−1)·b`; nodes nothing reads are dropped.
//! 3. **Memory planning**: every arena tensor lives from the op that writes it to the last op
//!    that reads it; offsets are assigned greedily, largest tensor first, at the lowest offset
//!    free over its lifetime (TensorFlow Lite Micro's greedy-by-size planner). The report
//!    gives the arena next to the liveness lower bound (the largest total of simultaneously
//!    live tensors).
//!
//! Weights are rewritten into the layout the kernels read: `[kd][kh][kw][cin][cout]`.
//! A transposed convolution of stride 1 and padding 1 is the convolution with the flipped
//! kernel and swapped channel axes, so the runtime needs one convolution kernel.

use std::collections::HashMap;

use msnet::graph::Lowering;
use msnet::ir::{Graph, conv_output_size};
use msnet::spec::ConvSpec;
use msnet::{Model, Spec, Weights};
use msnet_runtime::format::{
    HEADER_WORDS, Header, OP_WORDS, OpRecord, Opcode, Operands, plan_checksum,
};

/// Arena offsets are multiples of this many floats (64 bytes: a cache line, a SIMD vector).
const ALIGN: usize = 16;

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Input,
    Normalize { mean: Vec<f32>, std: Vec<f32> },
    Conv { layer: usize, relu: bool },
    AddScaled(f32),
    Mul,
    Affine(f32, f32),
    ScaledSquare(f32),
    Relu,
    PhaseSoftmax(usize),
    AvgPool,
    Prolong,
    ClassSoftmax,
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    inputs: Vec<usize>,
    channels: usize,
    size: [usize; 3],
}

impl Node {
    fn len(&self) -> usize {
        self.channels * self.size.iter().product::<usize>()
    }
}

/// Records the MSNet program as plan nodes (values are node indices).
pub struct PlanLowering<'a> {
    spec: &'a Spec,
    nodes: Vec<Node>,
}

impl<'a> PlanLowering<'a> {
    fn new(spec: &'a Spec, size: [usize; 3]) -> Self {
        let input = Node {
            kind: Kind::Input,
            inputs: vec![],
            channels: spec.config.in_channels,
            size,
        };
        Self {
            spec,
            nodes: vec![input],
        }
    }

    fn push(&mut self, kind: Kind, inputs: &[usize], channels: usize, size: [usize; 3]) -> usize {
        self.nodes.push(Node {
            kind,
            inputs: inputs.to_vec(),
            channels,
            size,
        });
        self.nodes.len() - 1
    }

    fn same(&mut self, kind: Kind, inputs: &[usize]) -> usize {
        let (c, s) = (self.nodes[inputs[0]].channels, self.nodes[inputs[0]].size);
        self.push(kind, inputs, c, s)
    }

    /// The spatial size after scaling the resampled axes (depth only in 3D).
    fn resized(&self, x: usize, f: impl Fn(usize) -> usize) -> [usize; 3] {
        let [d, h, w] = self.nodes[x].size;
        let d = if self.spec.config.dims == 3 { f(d) } else { d };
        [d, f(h), f(w)]
    }
}

impl Lowering for PlanLowering<'_> {
    type Value = usize;

    fn normalize(&mut self, x: &usize, mean: &[f32], std: &[f32]) -> usize {
        let kind = Kind::Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        };
        self.same(kind, &[*x])
    }

    fn conv(&mut self, layer: &ConvSpec, x: &usize) -> usize {
        let s = layer.stride;
        let size = self.resized(*x, |n| conv_output_size(n, s));
        let kind = Kind::Conv {
            layer: layer.index,
            relu: false,
        };
        self.push(kind, &[*x], layer.out_channels, size)
    }

    fn relu(&mut self, x: &usize) -> usize {
        self.same(Kind::Relu, &[*x])
    }

    fn add(&mut self, a: &usize, b: &usize) -> usize {
        self.same(Kind::AddScaled(1.0), &[*a, *b])
    }

    fn sub(&mut self, a: &usize, b: &usize) -> usize {
        self.same(Kind::AddScaled(-1.0), &[*a, *b])
    }

    fn mul(&mut self, a: &usize, b: &usize) -> usize {
        self.same(Kind::Mul, &[*a, *b])
    }

    fn affine(&mut self, x: &usize, scale: f32, shift: f32) -> usize {
        self.same(Kind::Affine(scale, shift), &[*x])
    }

    fn square(&mut self, x: &usize) -> usize {
        self.same(Kind::ScaledSquare(1.0), &[*x])
    }

    fn phase_softmax(&mut self, x: &usize, phases: usize) -> usize {
        self.same(Kind::PhaseSoftmax(phases), &[*x])
    }

    fn avg_pool(&mut self, x: &usize) -> usize {
        let size = self.resized(*x, |n| n / 2);
        let c = self.nodes[*x].channels;
        self.push(Kind::AvgPool, &[*x], c, size)
    }

    fn prolong(&mut self, x: &usize) -> usize {
        let size = self.resized(*x, |n| n * 2);
        let c = self.nodes[*x].channels;
        self.push(Kind::Prolong, &[*x], c, size)
    }

    fn class_softmax(&mut self, x: &usize) -> usize {
        self.same(Kind::ClassSoftmax, &[*x])
    }
}

/// How many live nodes read each node.
fn use_counts(nodes: &[Node], live: &[bool]) -> Vec<usize> {
    let mut uses = vec![0; nodes.len()];
    for (n, _) in nodes.iter().zip(live).filter(|(_, l)| **l) {
        for &i in &n.inputs {
            uses[i] += 1;
        }
    }
    uses
}

/// Nodes reachable backwards from `output`.
fn reachable(nodes: &[Node], output: usize) -> Vec<bool> {
    let mut live = vec![false; nodes.len()];
    live[output] = true;
    for i in (0..nodes.len()).rev() {
        if live[i] {
            for &j in &nodes[i].inputs {
                live[j] = true;
            }
        }
    }
    live
}

/// A rewrite rule: given node `i` and how many live nodes read each node, rewrites the graph
/// around `i` if the rule applies and says whether it did. A rule never changes what the
/// graph computes; the nodes it bypasses become dead and [`reachable`] drops them.
type Rule = fn(&mut [Node], usize, &[usize]) -> bool;

/// The plan compiler's rewrites, applied until none applies (the module docs' step 2).
const RULES: [(&str, Rule); 4] = [
    ("conv + relu", fuse_conv_relu),
    ("scale into square", fold_scale_into_square),
    ("scaled second operand", fold_scaled_operand),
    ("scaled first operand", commute_scaled_operand),
];

/// conv → relu: the ReLU runs in the convolution's store.
fn fuse_conv_relu(nodes: &mut [Node], i: usize, uses: &[usize]) -> bool {
    let Kind::Relu = nodes[i].kind else {
        return false;
    };
    let x = nodes[i].inputs[0];
    let Kind::Conv { layer, relu: false } = nodes[x].kind else {
        return false;
    };
    if uses[x] != 1 {
        return false;
    }
    nodes[x].kind = Kind::Conv { layer, relu: true };
    redirect(nodes, i, x);
    true
}

/// s·(k·x²) with no shift → (s·k)·x²: folds the FEM's constant factors (dt, λ, 1/ε).
fn fold_scale_into_square(nodes: &mut [Node], i: usize, uses: &[usize]) -> bool {
    let Kind::Affine(s, 0.0) = nodes[i].kind else {
        return false;
    };
    let x = nodes[i].inputs[0];
    let Kind::ScaledSquare(k) = nodes[x].kind else {
        return false;
    };
    if uses[x] != 1 {
        return false;
    }
    nodes[x].kind = Kind::ScaledSquare(k * s);
    redirect(nodes, i, x);
    true
}

/// a + k·(s·x) → a + (k·s)·x: a scaling feeding the second operand moves into the add.
fn fold_scaled_operand(nodes: &mut [Node], i: usize, uses: &[usize]) -> bool {
    let Kind::AddScaled(k) = nodes[i].kind else {
        return false;
    };
    let b = nodes[i].inputs[1];
    let Kind::Affine(s, 0.0) = nodes[b].kind else {
        return false;
    };
    if uses[b] != 1 {
        return false;
    }
    nodes[i].kind = Kind::AddScaled(k * s);
    nodes[i].inputs[1] = nodes[b].inputs[0];
    true
}

/// (s·x) + b → b + s·x: only a plain sum commutes.
fn commute_scaled_operand(nodes: &mut [Node], i: usize, uses: &[usize]) -> bool {
    let Kind::AddScaled(1.0) = nodes[i].kind else {
        return false;
    };
    let (a, b) = (nodes[i].inputs[0], nodes[i].inputs[1]);
    let Kind::Affine(s, 0.0) = nodes[a].kind else {
        return false;
    };
    if uses[a] != 1 {
        return false;
    }
    nodes[i].kind = Kind::AddScaled(s);
    nodes[i].inputs = vec![b, nodes[a].inputs[0]];
    true
}

/// Applies [`RULES`] until none applies; returns which nodes remain (dead ones, such as the
/// bypassed nodes and values the program computes but never uses, are dropped).
fn fuse(nodes: &mut [Node], output: usize) -> Vec<bool> {
    'rewrite: loop {
        let live = reachable(nodes, output);
        let uses = use_counts(nodes, &live);
        for i in (0..nodes.len()).filter(|&i| live[i]) {
            if RULES.iter().any(|(_, rule)| rule(nodes, i, &uses)) {
                continue 'rewrite;
            }
        }
        return live;
    }
}

/// Makes every reader of node `from` read node `to` instead.
fn redirect(nodes: &mut [Node], from: usize, to: usize) {
    for n in nodes.iter_mut() {
        for i in n.inputs.iter_mut() {
            if *i == from {
                *i = to;
            }
        }
    }
}

/// The arena layout of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Offset (f32 elements) of each tensor, in tensor order.
    pub offsets: Vec<usize>,
    /// Arena length in f32 elements.
    pub arena_len: usize,
    /// The largest total of simultaneously live tensors.
    pub lower_bound: usize,
}

/// Greedy-by-size placement of tensors `(len, first step, last step)` (lifetimes inclusive).
pub fn plan_memory(tensors: &[(usize, usize, usize)]) -> MemoryPlan {
    let steps = tensors.iter().map(|t| t.2 + 1).max().unwrap_or(0);
    let mut live = vec![0usize; steps];
    for &(len, first, last) in tensors {
        live[first..=last].iter_mut().for_each(|v| *v += len);
    }
    let lower_bound = live.iter().copied().max().unwrap_or(0);

    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(tensors[i].0), tensors[i].1));
    let mut offsets = vec![0usize; tensors.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_len = 0;
    for i in order {
        let (len, first, last) = tensors[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| tensors[j].1 <= last && first <= tensors[j].2)
            .map(|&j| (offsets[j], offsets[j] + tensors[j].0))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + len <= start {
                break;
            }
            offset = offset.max(end.next_multiple_of(ALIGN));
        }
        offsets[i] = offset;
        arena_len = arena_len.max(offset + len);
        placed.push(i);
    }
    MemoryPlan {
        offsets,
        arena_len,
        lower_bound,
    }
}

/// A compiled plan and what it took.
#[derive(Clone, Debug)]
pub struct CompiledPlan {
    pub bytes: Vec<u8>,
    pub ops: usize,
    pub arena_len: usize,
    pub arena_lower_bound: usize,
    pub macs: u64,
}

/// Why a model cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// A count or offset of this model exceeds the plan format's 32-bit fields.
    #[error(
        "cannot compile the runtime plan: {0} does not fit the plan format's 32-bit fields \
         (the model or its input size is too large for a plan)"
    )]
    TooBig(&'static str),
    /// The compiler gave an op operands its op-table signature does not have (a compiler
    /// bug: the plan would be refused by the runtime).
    #[error("cannot encode a {op} op: {reason}")]
    Operands {
        op: &'static str,
        reason: &'static str,
    },
}

fn word(v: usize, what: &'static str) -> Result<u32, CompileError> {
    u32::try_from(v).map_err(|_| CompileError::TooBig(what))
}

/// When each op runs and which arena tensors live when.
struct Schedule {
    /// Live ops in execution order: node order (the program is recorded in order).
    order: Vec<usize>,
    /// The nodes whose outputs live in the arena: every op's but the last (it writes the
    /// caller's output).
    arena_nodes: Vec<usize>,
    /// `(len, first step, last step)` of each arena node's tensor, lifetimes inclusive.
    tensors: Vec<(usize, usize, usize)>,
}

fn schedule(nodes: &[Node], live: &[bool]) -> Schedule {
    let order: Vec<usize> = (0..nodes.len())
        .filter(|&i| live[i] && nodes[i].kind != Kind::Input)
        .collect();
    let step_of: HashMap<usize, usize> = order.iter().enumerate().map(|(s, &i)| (i, s)).collect();
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (step, &i) in order.iter().enumerate() {
        for &j in &nodes[i].inputs {
            last_use.insert(j, step);
        }
    }
    let arena_nodes: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| nodes[i].kind != Kind::ClassSoftmax)
        .collect();
    let tensors = arena_nodes
        .iter()
        .map(|&i| {
            let first = step_of[&i];
            (
                nodes[i].len(),
                first,
                last_use.get(&i).copied().unwrap_or(first),
            )
        })
        .collect();
    Schedule {
        order,
        arena_nodes,
        tensors,
    }
}

/// Compiles `model` for the input size `size = [D, H, W]` (already validated by the caller).
pub fn compile_plan(model: &Model, size: [usize; 3]) -> Result<CompiledPlan, CompileError> {
    let spec = &model.spec;
    let weights: &Weights = &model.weights;
    let mut lowering = PlanLowering::new(spec, size);
    let out = Graph::record_at(spec, size).lower(&mut lowering, 0);
    let mut nodes = lowering.nodes;
    let live = fuse(&mut nodes, out);

    let Schedule {
        order,
        arena_nodes,
        tensors,
    } = schedule(&nodes, &live);
    let memory = plan_memory(&tensors);
    let offset: HashMap<usize, usize> = arena_nodes
        .iter()
        .zip(&memory.offsets)
        .map(|(&i, &o)| (i, o))
        .collect();

    let mut weight_data: Vec<f32> = Vec::new();
    let mut layer_offsets: HashMap<usize, usize> = HashMap::new();
    let mut records = Vec::with_capacity(order.len());
    let mut macs: u64 = 0;
    for &i in &order {
        let node = &nodes[i];
        // Every op reads its first input's shape; where it reads and writes is where its
        // tensors live (the caller's input and output are in no arena slot).
        let source = &nodes[node.inputs[0]];
        let at = |j: &usize| offset.get(j).map(|&o| word(o, "an arena offset"));
        let inputs = node
            .inputs
            .iter()
            .filter_map(at)
            .collect::<Result<Vec<_>, _>>()?;
        let mut operands = Operands {
            inputs: &inputs,
            out: at(&i).transpose()?,
            channels: word(source.channels, "a channel count")?,
            size: [
                word(source.size[0], "a size")?,
                word(source.size[1], "a size")?,
                word(source.size[2], "a size")?,
            ],
            out_channels: word(node.channels, "a channel count")?,
            param: None,
            weights: None,
            scale: None,
            shift: None,
            relu: false,
        };
        // What the compiler knows per op: its opcode and its scalars and weights. Which
        // record field holds what is the op table's (`OpRecord::encode`).
        let opcode = match &node.kind {
            Kind::Normalize { mean, std } => {
                operands.weights = Some(word(weight_data.len(), "the weights")?);
                weight_data.extend_from_slice(mean);
                weight_data.extend(std.iter().map(|s| 1.0 / s));
                Opcode::Normalize
            }
            Kind::Conv { layer, relu } => {
                let l = &spec.convs[*layer];
                let start = *layer_offsets.entry(*layer).or_insert_with(|| {
                    let start = weight_data.len();
                    weight_data.extend(msnet::weights::to_kernel_layout(
                        l,
                        &weights.tensors[*layer],
                    ));
                    start
                });
                operands.weights = Some(word(start, "the weights")?);
                operands.param = Some(word(l.stride, "a stride")?);
                operands.relu = *relu;
                macs += (node.len() * l.fan_in()) as u64;
                Opcode::Conv
            }
            Kind::AddScaled(s) => {
                operands.scale = Some(*s);
                Opcode::AddScaled
            }
            Kind::Mul => Opcode::Mul,
            Kind::Affine(s, t) => {
                operands.scale = Some(*s);
                operands.shift = Some(*t);
                Opcode::Affine
            }
            Kind::ScaledSquare(s) => {
                operands.scale = Some(*s);
                Opcode::ScaledSquare
            }
            Kind::Relu => Opcode::Relu,
            Kind::PhaseSoftmax(p) => {
                operands.param = Some(word(*p, "the phase count")?);
                Opcode::PhaseSoftmax
            }
            Kind::AvgPool => Opcode::AvgPool,
            Kind::Prolong => Opcode::Prolong,
            Kind::ClassSoftmax => Opcode::ClassSoftmax,
            Kind::Input => unreachable!("the input is not an op"),
        };
        let record =
            OpRecord::encode(opcode, &operands).map_err(|reason| CompileError::Operands {
                op: opcode.signature().name,
                reason,
            })?;
        records.push(record);
    }

    let cfg = &spec.config;
    let ops_words = records.len() * OP_WORDS;
    let file_len = 4 * (HEADER_WORDS + ops_words + weight_data.len());
    let mut header = Header {
        dims: word(cfg.dims, "dims")?,
        in_channels: word(cfg.in_channels, "a channel count")?,
        classes: word(cfg.classes, "a channel count")?,
        size: [
            word(size[0], "a size")?,
            word(size[1], "a size")?,
            word(size[2], "a size")?,
        ],
        arena_len: word(memory.arena_len, "the arena")?,
        arena_lower_bound: word(memory.lower_bound, "the arena")?,
        op_count: word(records.len(), "the op count")?,
        weights_len: word(weight_data.len(), "the weights")?,
        file_len: word(file_len, "the plan")?,
        checksum: 0,
        macs,
    };
    let encode = |header: &Header| -> Vec<u8> {
        let mut bytes = Vec::with_capacity(file_len);
        let words = header
            .to_words()
            .into_iter()
            .chain(records.iter().flat_map(|r| r.to_words()))
            .chain(weight_data.iter().map(|w| w.to_bits()));
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        bytes
    };
    header.checksum = plan_checksum(&encode(&header));
    Ok(CompiledPlan {
        bytes: encode(&header),
        ops: records.len(),
        arena_len: memory.arena_len,
        arena_lower_bound: memory.lower_bound,
        macs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny graph: node 0 is the input, then `(kind, inputs)` in order; all 4×8×8.
    fn graph(ops: &[(Kind, &[usize])]) -> Vec<Node> {
        let node = |kind: Kind, inputs: &[usize]| Node {
            kind,
            inputs: inputs.to_vec(),
            channels: 4,
            size: [1, 8, 8],
        };
        let mut nodes = vec![node(Kind::Input, &[])];
        nodes.extend(ops.iter().map(|(k, i)| node(k.clone(), i)));
        nodes
    }

    /// The live nodes' kinds after [`fuse`], in order.
    fn fused(mut nodes: Vec<Node>) -> (Vec<Kind>, Vec<Node>) {
        let out = nodes.len() - 1;
        let live = fuse(&mut nodes, out);
        let kinds = (0..nodes.len())
            .filter(|&i| live[i])
            .map(|i| nodes[i].kind.clone())
            .collect();
        (kinds, nodes)
    }

    fn conv(relu: bool) -> Kind {
        Kind::Conv { layer: 0, relu }
    }

    #[test]
    fn a_relu_fuses_into_the_convolution_it_alone_reads() {
        let (kinds, _) = fused(graph(&[
            (conv(false), &[0]),
            (Kind::Relu, &[1]),
            (Kind::ClassSoftmax, &[2]),
        ]));
        assert_eq!(kinds, [Kind::Input, conv(true), Kind::ClassSoftmax]);
        // A convolution another node also reads keeps its unrectified output.
        let shared = graph(&[
            (conv(false), &[0]),
            (Kind::Relu, &[1]),
            (Kind::Mul, &[1, 2]),
            (Kind::ClassSoftmax, &[3]),
        ]);
        let (kinds, _) = fused(shared);
        assert_eq!(kinds[1..3], [conv(false), Kind::Relu]);
    }

    #[test]
    fn a_scaling_folds_into_the_square_before_it() {
        let (kinds, _) = fused(graph(&[
            (Kind::ScaledSquare(1.0), &[0]),
            (Kind::Affine(-0.5, 0.0), &[1]),
            (Kind::ClassSoftmax, &[2]),
        ]));
        assert_eq!(
            kinds,
            [Kind::Input, Kind::ScaledSquare(-0.5), Kind::ClassSoftmax]
        );
        // With a shift it is not a pure scaling and stays.
        let (kinds, _) = fused(graph(&[
            (Kind::ScaledSquare(1.0), &[0]),
            (Kind::Affine(-0.5, 1.0), &[1]),
            (Kind::ClassSoftmax, &[2]),
        ]));
        assert_eq!(kinds.len(), 4);
    }

    #[test]
    fn a_scaled_operand_folds_into_the_add() {
        // a − 2·x → a + (−2)·x, reading x directly.
        let (kinds, nodes) = fused(graph(&[
            (Kind::Relu, &[0]),
            (Kind::Affine(2.0, 0.0), &[0]),
            (Kind::AddScaled(-1.0), &[1, 2]),
            (Kind::ClassSoftmax, &[3]),
        ]));
        assert_eq!(
            kinds,
            [
                Kind::Input,
                Kind::Relu,
                Kind::AddScaled(-2.0),
                Kind::ClassSoftmax
            ]
        );
        assert_eq!(nodes[3].inputs, [1, 0]);
    }

    #[test]
    fn a_scaled_first_operand_commutes_only_in_a_plain_sum() {
        // 3·x + r → r + 3·x.
        let (kinds, nodes) = fused(graph(&[
            (Kind::Relu, &[0]),
            (Kind::Affine(3.0, 0.0), &[0]),
            (Kind::AddScaled(1.0), &[2, 1]),
            (Kind::ClassSoftmax, &[3]),
        ]));
        assert_eq!(
            kinds,
            [
                Kind::Input,
                Kind::Relu,
                Kind::AddScaled(3.0),
                Kind::ClassSoftmax
            ]
        );
        assert_eq!(nodes[3].inputs, [1, 0]);
        // 3·x − r is not r + 3·x: unchanged.
        let (kinds, _) = fused(graph(&[
            (Kind::Relu, &[0]),
            (Kind::Affine(3.0, 0.0), &[0]),
            (Kind::AddScaled(-1.0), &[2, 1]),
            (Kind::ClassSoftmax, &[3]),
        ]));
        assert_eq!(kinds.len(), 5);
    }

    #[test]
    fn values_nothing_reads_are_dropped() {
        let (kinds, _) = fused(graph(&[
            (Kind::Relu, &[0]),
            (Kind::Mul, &[0, 0]),
            (Kind::ClassSoftmax, &[1]),
        ]));
        assert_eq!(kinds, [Kind::Input, Kind::Relu, Kind::ClassSoftmax]);
    }

    /// The arena of a real MSNet plan (2D and 3D): tensors alive at the same step never share
    /// memory, and the greedy planner meets the liveness lower bound.
    #[test]
    fn the_arena_of_msnet_plans_is_disjoint_and_tight() {
        for (config, size) in [
            (msnet::Config::new(2, 3, 3), [1, 32, 32]),
            (msnet::Config::new(3, 1, 4), [16, 32, 32]),
        ] {
            let spec = Spec::new(&config);
            let mut lowering = PlanLowering::new(&spec, size);
            let out = Graph::record_at(&spec, size).lower(&mut lowering, 0);
            let mut nodes = lowering.nodes;
            let live = fuse(&mut nodes, out);
            let tensors = schedule(&nodes, &live).tensors;
            let m = plan_memory(&tensors);
            for (i, a) in tensors.iter().enumerate() {
                for (j, b) in tensors.iter().enumerate().skip(i + 1) {
                    if a.1 <= b.2 && b.1 <= a.2 {
                        let (oa, ob) = (m.offsets[i], m.offsets[j]);
                        assert!(
                            oa + a.0 <= ob || ob + b.0 <= oa,
                            "{size:?}: {i} and {j} overlap"
                        );
                    }
                }
            }
            assert_eq!(m.arena_len, m.lower_bound, "{size:?}");
        }
    }

    /// A compiled plan is one the runtime accepts (checksum, header, op records), for the
    /// model's shape, and its weights are the model's (a change of one weight changes it).
    #[test]
    fn compiled_plans_parse_in_the_runtime() {
        let config = msnet::Config::new(2, 3, 3);
        let spec = Spec::new(&config);
        let weights = msnet::weights::init(&spec, 7, Default::default());
        let mut model = Model { spec, weights };
        let plan = compile_plan(&model, [1, 32, 32]).unwrap();
        let buffer = msnet_runtime::host::PlanBuffer::from_bytes(&plan.bytes);
        let parsed = buffer.plan().unwrap();
        assert_eq!(parsed.size(), [1, 32, 32]);
        assert_eq!(parsed.output_len(), 3 * 32 * 32);
        assert_eq!(parsed.header().op_count as usize, plan.ops);
        model.weights.tensors[0][0] += 1.0;
        assert_ne!(compile_plan(&model, [1, 32, 32]).unwrap().bytes, plan.bytes);
    }

    /// The shipped models recompiled from their config and weights, at the input size their
    /// plan header records, give their shipped `model.msplan` byte for byte: the encoder (op
    /// records filled by the op table's signatures) writes what the exporter always wrote.
    #[test]
    fn recompiling_the_shipped_models_reproduces_their_plans() {
        let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
        for name in ["wbc", "fundus-disc-cup", "fundus-locator", "acdc-3d"] {
            let dir = std::path::Path::new(models).join(name);
            let shipped = std::fs::read(dir.join(msnet_runtime::format::PLAN_FILE))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut head = [0u32; HEADER_WORDS];
            for (w, b) in head.iter_mut().zip(shipped.chunks_exact(4)) {
                *w = u32::from_le_bytes(b.try_into().unwrap());
            }
            let header = Header::from_words(&head).unwrap();
            let model = Model::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
            let plan = compile_plan(&model, header.size.map(|v| v as usize)).unwrap();
            assert_eq!(plan.bytes.len(), shipped.len(), "{name}");
            assert!(plan.bytes == shipped, "{name}: the recompiled plan differs");
        }
    }

    #[test]
    fn greedy_planner_reuses_dead_space_and_meets_the_bound_on_a_chain() {
        // A chain: each tensor dies when the next is written.
        let chain = [(100, 0, 1), (100, 1, 2), (100, 2, 3), (100, 3, 3)];
        let m = plan_memory(&chain);
        assert_eq!(m.lower_bound, 200);
        assert!(m.arena_len <= 2 * 112, "{m:?}");
        // Overlapping lifetimes never share memory.
        for (i, a) in chain.iter().enumerate() {
            for (j, b) in chain.iter().enumerate().skip(i + 1) {
                if a.1 <= b.2 && b.1 <= a.2 {
                    let (oa, ob) = (m.offsets[i], m.offsets[j]);
                    assert!(oa + a.0 <= ob || ob + b.0 <= oa, "{i} and {j} overlap");
                }
            }
        }
    }
}
