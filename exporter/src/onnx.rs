//! The MSNet program ([`msnet::graph::forward`]) lowered to an ONNX graph.
//!
//! # The artifact
//! - opset 17 (`ai.onnx`), IR version 8, producer `msnet-edge`;
//! - one input, `image`: float `[1, in, H, W]` (2D) or `[1, in, D, H, W]` (3D), intensities in
//!   `[0, 1]` (normalisation is the graph's first operation); batch and spatial sizes are fixed;
//! - one output, `probabilities`: float `[1, classes, H, W]` / `[1, classes, D, H, W]`;
//! - one initializer per weight tensor, named as in `model.safetensors` (`down.1.L1.weight`),
//!   holding the same f32 values bit for bit (little-endian `raw_data`), in the weight file's
//!   (ONNX) layout; plus deduplicated constants (`const.*`: scalars, normalisation vectors,
//!   Resize scales, Reshape shapes);
//! - `metadata_props`: `msnet.config` (the model's `config.json`, compact) and
//!   `msnet.input_size` (`[D, H, W]` of this export).
//!
//! # Operators
//! Conv / ConvTranspose (3×3(×3), pads 1, no bias), Relu, Add, Sub, Mul, Reshape + Softmax
//! (axis 1) + Reshape for the grouped phase softmax, AveragePool (2, stride 2), Resize (linear,
//! half-pixel, scale 2: MSNET.md's edge-clamped ×2 prolongation), Softmax (axis 1).
//!
//! # The tuned variant
//! [`OnnxVariant::Tuned`] lowers the same typed graph into a graph that ONNX Runtime runs
//! faster (`model.tuned.onnx`, written by [`crate::tuned`]): the same input and output, the
//! metadata plus `msnet.onnx_variant: tuned`, and three rewrites:
//! - a node that repeats an earlier node (same operator, attributes and inputs; Add and Mul in
//!   either order) is not emitted again: its value is reused. On the finest grid `u0 = f`, so
//!   `v0·f` (the right-hand side) and `v0·u0` (in `A(u0, v0)`) are one product;
//! - each softmax is `ReduceMax`, `Sub`, `Exp`, `ReduceSum`, `Div` over axis 1 (the phase
//!   softmax between its two Reshapes): ONNX Runtime's `Softmax` over an axis other than the
//!   last transposes its input there and back. The max is kept: trained phase scores can
//!   lie far below zero, and where every phase of a pixel scores below about −104, `exp`
//!   alone is 0 in f32 for all of them and the softmax 0 / 0 (`tests/tuned_onnx.rs` checks
//!   such scores);
//! - a ConvTranspose (always stride 1, pads 1 in MSNet) is the Conv with the flipped kernel,
//!   the layout [`msnet::weights::to_kernel_layout`] defines for the runtime, in an
//!   initializer named `{layer}.flipped` (the file layout's name is not reused for other
//!   values, so [`check_weights`] does not apply to this variant). ONNX Runtime's Conv has
//!   its blocked-layout kernels; its ConvTranspose does not.
//!
//! Tried alone on the fundus model at 128×128 (a busy 2-core Xeon, ONNX Runtime 1.32, 1
//! thread, median 78 ms), the softmax rewrite took 14 ms off and the ConvTranspose rewrite 17
//! ms, both together 31 ms; `docs/benchmarks.md` has the side-by-side numbers.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use msnet::graph::Lowering;
use msnet::ir::{Graph, conv_output_size};
use msnet::spec::{ConvKind, ConvSpec, Spec};
use msnet::weights::to_kernel_layout;
use msnet::{Model, Weights};
use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

use crate::ExportError;

/// The ONNX operator set the export declares (`ai.onnx`).
pub const OPSET: i64 = 17;
/// The ONNX IR version the export declares.
pub const IR_VERSION: i64 = 8;
/// `producer_name` of every export.
pub const PRODUCER: &str = "msnet-edge";
/// Name of the graph input (the image in `[0, 1]`).
pub const INPUT: &str = msnet_eval::golden::INPUT_NAME;
/// Name of the graph output (class probabilities).
pub const OUTPUT: &str = msnet_eval::golden::OUTPUT_NAME;

/// Inputs each emitted operator takes (optional inputs passed as `""` count).
fn arity(op_type: &str) -> Option<usize> {
    Some(match op_type {
        "Relu" | "Softmax" | "AveragePool" | "Exp" | "ReduceMax" => 1,
        "Conv" | "ConvTranspose" | "Add" | "Sub" | "Mul" | "Div" | "Reshape" | "ReduceSum" => 2,
        "Resize" => 3,
        _ => return None,
    })
}

fn attr_ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn tensor_f32(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: f32_bytes(values),
        ..Default::default()
    }
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Compact number formatting for constant names: `0.5`, `-2`, `1e-3`.
fn fmt_f32(v: f32) -> String {
    format!("{v}")
}

/// Which ONNX graph [`OnnxLowering`] writes for the typed graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnnxVariant {
    /// `model.onnx`: one ONNX operator (or Reshape + Softmax + Reshape) per op of the graph.
    #[default]
    Plain,
    /// `model.tuned.onnx`: repeated nodes emitted once, softmax as exp / sum, ConvTranspose
    /// as the flipped Conv (the module docs say why each).
    Tuned,
}

/// What makes two nodes compute the same value: operator, inputs (in a canonical order for
/// commutative operators) and encoded attributes.
type NodeKey = (String, Vec<String>, Vec<Vec<u8>>);

fn node_key(op_type: &str, inputs: &[&str], attribute: &[AttributeProto]) -> NodeKey {
    let mut inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    // IEEE addition and multiplication are commutative bit for bit.
    if matches!(op_type, "Add" | "Mul") {
        inputs.sort();
    }
    let attribute = attribute.iter().map(Message::encode_to_vec).collect();
    (op_type.into(), inputs, attribute)
}

/// A transposed convolution's weights (file layout `[in, out, k…]`) as the ONNX Conv weights
/// `[out, in, k…]` of the same operator: the kernel layout's flipped kernel, reordered.
fn flipped_conv_weights(layer: &ConvSpec, file: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let kernel = to_kernel_layout(layer, file);
    let taps = layer.kernel.pow(layer.dims as u32);
    let (cin, cout) = (layer.in_channels, layer.out_channels);
    let mut weights = vec![0.0; kernel.len()];
    for t in 0..taps {
        for ci in 0..cin {
            for co in 0..cout {
                weights[(co * cin + ci) * taps + t] = kernel[(t * cin + ci) * cout + co];
            }
        }
    }
    let mut dims = vec![cout, cin];
    dims.extend(std::iter::repeat_n(layer.kernel, layer.dims));
    (dims, weights)
}

/// Lowers the MSNet program to ONNX nodes. Values are ONNX tensor names; every value is
/// `[1, C, H, W]` (2D) or `[1, C, D, H, W]` (3D) and its shape is tracked, since grouped
/// softmax needs explicit Reshape targets.
///
/// Build one with [`OnnxLowering::new`], declare the input with [`OnnxLowering::input`], run
/// [`graph::forward`] and take the graph with [`OnnxLowering::finish`] — or simply call
/// [`build_onnx`].
pub struct OnnxLowering<'a> {
    weights: &'a Weights,
    dims: usize,
    variant: OnnxVariant,
    /// Tuned variant: the value each emitted node computes, by [`node_key`].
    computed: HashMap<NodeKey, String>,
    inputs: Vec<ValueInfoProto>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    /// Deduplicated constants: (data type, dims, raw bytes) to initializer name.
    constants: HashMap<(i32, Vec<usize>, Vec<u8>), String>,
    /// Every tensor and node name in use (ONNX wants unique value names; unique node names
    /// keep tract's graph and error messages readable).
    names: HashSet<String>,
    /// Uses of each node name stem, for `Relu_3`, `down.1.L1_0`...
    stems: HashMap<String, usize>,
    shapes: HashMap<String, Vec<usize>>,
    /// Layers whose weight initializer is already in the graph.
    emitted: HashSet<usize>,
    /// The first inconsistency met (lowering methods cannot return errors).
    error: Option<String>,
}

impl<'a> OnnxLowering<'a> {
    /// A lowering of `spec` (2D or 3D) with its weights. The weights must match the spec
    /// ([`Weights::check`]); [`build_onnx`] checks this first.
    pub fn new(spec: &Spec, weights: &'a Weights) -> Self {
        Self::with_variant(spec, weights, OnnxVariant::Plain)
    }

    /// [`OnnxLowering::new`] for either variant of the graph.
    pub fn with_variant(spec: &Spec, weights: &'a Weights, variant: OnnxVariant) -> Self {
        Self {
            weights,
            dims: spec.config.dims,
            variant,
            computed: HashMap::new(),
            inputs: Vec::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            constants: HashMap::new(),
            names: HashSet::new(),
            stems: HashMap::new(),
            shapes: HashMap::new(),
            emitted: HashSet::new(),
            error: None,
        }
    }

    /// Declares a float graph input of a fixed shape and returns its value.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> String {
        self.claim(name);
        self.inputs.push(value_info(name, shape));
        self.shapes.insert(name.into(), shape.to_vec());
        name.into()
    }

    /// The shape of a value emitted so far.
    pub fn shape_of(&self, value: &str) -> Option<&[usize]> {
        self.shapes.get(value).map(Vec::as_slice)
    }

    /// The graph producing `output` under the name `output_name`.
    pub fn finish(mut self, output: &str, output_name: &str) -> Result<GraphProto, ExportError> {
        if let Some(e) = self.error.take() {
            return Err(ExportError::Structure(e));
        }
        let shape =
            self.shapes.get(output).cloned().ok_or_else(|| {
                ExportError::Structure(format!("output value `{output}` unknown"))
            })?;
        if output != output_name {
            if self.names.contains(output_name) {
                return Err(ExportError::Structure(format!(
                    "output name `{output_name}` is already used in the graph"
                )));
            }
            for node in &mut self.nodes {
                for name in node.input.iter_mut().chain(node.output.iter_mut()) {
                    if name == output {
                        *name = output_name.into();
                    }
                }
            }
        }
        Ok(GraphProto {
            name: "msnet".into(),
            doc_string: "MSNet: multigrid FAS V-cycle segmentation network (msnet-edge)".into(),
            node: self.nodes,
            initializer: self.initializers,
            input: self.inputs,
            output: vec![value_info(output_name, &shape)],
            ..Default::default()
        })
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn claim(&mut self, name: &str) {
        if !self.names.insert(name.into()) {
            self.fail(format!("tensor name `{name}` used twice"));
        }
    }

    /// A fresh name `{stem}_{n}`.
    fn fresh(&mut self, stem: &str) -> String {
        loop {
            let n = self.stems.entry(stem.into()).or_insert(0);
            let name = format!("{stem}_{n}");
            *n += 1;
            if self.names.insert(name.clone()) {
                return name;
            }
        }
    }

    fn shape(&mut self, value: &str) -> Vec<usize> {
        match self.shapes.get(value) {
            Some(s) => s.clone(),
            None => {
                self.fail(format!("value `{value}` used before it is produced"));
                vec![1, 1]
            }
        }
    }

    /// Emits one node (named and producing a value named `{stem}_{n}`) of known output shape;
    /// in the tuned variant, returns the value of an identical earlier node instead.
    fn node(
        &mut self,
        op_type: &str,
        stem: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
        shape: Vec<usize>,
    ) -> String {
        let key =
            (self.variant == OnnxVariant::Tuned).then(|| node_key(op_type, inputs, &attribute));
        if let Some(value) = key.as_ref().and_then(|k| self.computed.get(k)) {
            return value.clone();
        }
        let name = self.fresh(stem);
        if let Some(key) = key {
            self.computed.insert(key, name.clone());
        }
        self.nodes.push(NodeProto {
            name: name.clone(),
            op_type: op_type.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            attribute,
            ..Default::default()
        });
        self.shapes.insert(name.clone(), shape);
        name
    }

    /// A constant initializer, shared by every use of the same type, shape and data.
    fn constant(
        &mut self,
        label: &str,
        data_type: DataType,
        dims: &[usize],
        raw: Vec<u8>,
    ) -> String {
        let key = (data_type as i32, dims.to_vec(), raw);
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let mut name = format!("const.{label}");
        if self.names.contains(&name) {
            name = self.fresh(&name);
        } else {
            self.names.insert(name.clone());
        }
        self.initializers.push(TensorProto {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: data_type as i32,
            raw_data: key.2.clone(),
            ..Default::default()
        });
        self.constants.insert(key, name.clone());
        self.shapes.insert(name.clone(), dims.to_vec());
        name
    }

    fn scalar(&mut self, v: f32) -> String {
        self.constant(&fmt_f32(v), DataType::Float, &[], f32_bytes(&[v]))
    }

    fn shape_constant(&mut self, shape: &[usize]) -> String {
        let label = format!(
            "shape.{}",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x")
        );
        let raw = shape
            .iter()
            .flat_map(|&d| (d as i64).to_le_bytes())
            .collect();
        self.constant(&label, DataType::Int64, &[shape.len()], raw)
    }

    /// `[1, n, 1, 1(, 1)]`: a per-channel vector broadcast over batch and space.
    fn channel_dims(&self, n: usize) -> Vec<usize> {
        let mut d = vec![1, n];
        d.extend(std::iter::repeat_n(1, self.dims));
        d
    }

    fn binary(&mut self, op: &str, a: &str, b: &str) -> String {
        let sa = self.shape(a);
        let sb = self.shape(b);
        // `b` may be a scalar or a per-channel constant broadcast over `a`; two activations
        // must agree.
        let broadcasts = sb.len() <= sa.len()
            && sb
                .iter()
                .rev()
                .zip(sa.iter().rev())
                .all(|(&nb, &na)| nb == na || nb == 1);
        if !broadcasts {
            self.fail(format!(
                "{op} of `{a}` {sa:?} and `{b}` {sb:?}: shapes do not broadcast"
            ));
        }
        self.node(op, op, &[a, b], vec![], sa)
    }

    /// Whether `layer` is written as the Conv with the flipped kernel.
    fn flips(&self, layer: &ConvSpec) -> bool {
        layer.kind == ConvKind::ConvTranspose && self.variant == OnnxVariant::Tuned
    }

    /// The initializer holding `layer`'s weights, emitted at the layer's first use.
    fn weight_initializer(&mut self, layer: &ConvSpec) -> String {
        let flip = self.flips(layer);
        let name = if flip {
            format!("{}.flipped", layer.name)
        } else {
            layer.name.clone()
        };
        if !self.emitted.insert(layer.index) {
            return name;
        }
        let Some(w) = self.weights.tensors.get(layer.index) else {
            self.fail(format!("no weights for layer `{}`", layer.name));
            return name;
        };
        if w.len() != layer.len() {
            self.fail(format!(
                "weights of `{}` hold {} values, shape {:?} needs {}",
                layer.name,
                w.len(),
                layer.shape(),
                layer.len()
            ));
            return name;
        }
        self.claim(&name);
        let tensor = if flip {
            let (dims, values) = flipped_conv_weights(layer, w);
            tensor_f32(&name, &dims, &values)
        } else {
            tensor_f32(&name, &layer.shape(), w)
        };
        self.initializers.push(tensor);
        name
    }

    /// Softmax over axis 1 of `x`: one Softmax node, or in the tuned variant
    /// `exp(x - max) / sum(exp(x - max))` with both reductions over axis 1.
    fn softmax_axis1(&mut self, x: &str, stem: &str, shape: Vec<usize>) -> String {
        if self.variant == OnnxVariant::Plain {
            return self.node("Softmax", stem, &[x], vec![attr_int("axis", 1)], shape);
        }
        let mut reduced = shape.clone();
        reduced[1] = 1;
        let max = self.node(
            "ReduceMax",
            &format!("{stem}.max"),
            &[x],
            vec![attr_ints("axes", &[1]), attr_int("keepdims", 1)],
            reduced.clone(),
        );
        let shifted = self.binary("Sub", x, &max);
        let exp = self.node("Exp", &format!("{stem}.exp"), &[&shifted], vec![], shape);
        let axes = self.constant("axes.1", DataType::Int64, &[1], 1i64.to_le_bytes().to_vec());
        let sum = self.node(
            "ReduceSum",
            &format!("{stem}.sum"),
            &[&exp, &axes],
            vec![attr_int("keepdims", 1)],
            reduced,
        );
        self.binary("Div", &exp, &sum)
    }
}

impl Lowering for OnnxLowering<'_> {
    type Value = String;

    fn normalize(&mut self, x: &String, mean: &[f32], std: &[f32]) -> String {
        // `(x - mean) * (1 / std)` as the burn lowering computes it; subtracting 0 and
        // multiplying by 1 are exact identities, so they are left out.
        let dims = self.channel_dims(mean.len());
        let mut y = x.clone();
        if mean.iter().any(|&m| m != 0.0) {
            let m = self.constant("normalize.mean", DataType::Float, &dims, f32_bytes(mean));
            y = self.binary("Sub", &y, &m);
        }
        let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        if inv.iter().any(|&v| v != 1.0) {
            let s = self.constant("normalize.inv_std", DataType::Float, &dims, f32_bytes(&inv));
            y = self.binary("Mul", &y, &s);
        }
        y
    }

    fn conv(&mut self, layer: &ConvSpec, x: &String) -> String {
        let weight = self.weight_initializer(layer);
        let shape = self.shape(x);
        if shape.len() != 2 + layer.dims || shape[1] != layer.in_channels {
            self.fail(format!(
                "`{}` expects {} channels over {} axes, got `{x}` of shape {shape:?}",
                layer.name, layer.in_channels, layer.dims
            ));
        }
        // Transposed layers have stride 1 (the spec's rule), so both kinds share the size rule.
        let (k, s) = (layer.kernel, layer.stride);
        let mut out = vec![1, layer.out_channels];
        out.extend(shape.iter().skip(2).map(|&n| conv_output_size(n, s)));
        // Stride 1 and pads 1, so the flipped kernel's Conv keeps pads 1 (k - 1 - 1).
        let op = match layer.kind {
            ConvKind::ConvTranspose if !self.flips(layer) => "ConvTranspose",
            _ => "Conv",
        };
        let d = layer.dims;
        let attrs = vec![
            attr_ints("kernel_shape", &vec![k; d]),
            attr_ints("pads", &vec![1; 2 * d]),
            attr_ints("strides", &vec![s; d]),
            attr_ints("dilations", &vec![1; d]),
            attr_int("group", 1),
        ];
        let stem = layer
            .name
            .strip_suffix(".weight")
            .unwrap_or(&layer.name)
            .to_string();
        self.node(op, &stem, &[x, &weight], attrs, out)
    }

    fn relu(&mut self, x: &String) -> String {
        let shape = self.shape(x);
        self.node("Relu", "Relu", &[x], vec![], shape)
    }

    fn add(&mut self, a: &String, b: &String) -> String {
        self.binary("Add", a, b)
    }

    fn sub(&mut self, a: &String, b: &String) -> String {
        self.binary("Sub", a, b)
    }

    fn mul(&mut self, a: &String, b: &String) -> String {
        self.binary("Mul", a, b)
    }

    fn affine(&mut self, x: &String, scale: f32, shift: f32) -> String {
        let mut y = x.clone();
        if scale != 1.0 {
            let a = self.scalar(scale);
            y = self.binary("Mul", &y, &a);
        }
        if shift != 0.0 {
            let b = self.scalar(shift);
            y = self.binary("Add", &y, &b);
        }
        y
    }

    fn square(&mut self, x: &String) -> String {
        self.binary("Mul", x, x)
    }

    fn phase_softmax(&mut self, x: &String, phases: usize) -> String {
        let shape = self.shape(x);
        let c = shape.get(1).copied().unwrap_or(0);
        if phases == 0 || !c.is_multiple_of(phases) {
            self.fail(format!(
                "phase softmax of `{x}` {shape:?}: {c} channels do not split into {phases} phases"
            ));
            return x.clone();
        }
        let spatial: usize = shape.iter().skip(2).product();
        let grouped = [shape[0], phases, c / phases, spatial];
        let to = self.shape_constant(&grouped);
        let g = self.node("Reshape", "Reshape", &[x, &to], vec![], grouped.to_vec());
        let sm = self.softmax_axis1(&g, "PhaseSoftmax", grouped.to_vec());
        let back = self.shape_constant(&shape);
        self.node("Reshape", "Reshape", &[&sm, &back], vec![], shape)
    }

    fn avg_pool(&mut self, x: &String) -> String {
        let mut shape = self.shape(x);
        for n in shape.iter_mut().skip(2) {
            *n /= 2;
        }
        let d = self.dims;
        let attrs = vec![
            attr_ints("kernel_shape", &vec![2; d]),
            attr_ints("strides", &vec![2; d]),
        ];
        self.node("AveragePool", "AveragePool", &[x], attrs, shape)
    }

    fn prolong(&mut self, x: &String) -> String {
        let mut shape = self.shape(x);
        let mut scales = vec![1.0f32; shape.len()];
        for (n, s) in shape.iter_mut().zip(scales.iter_mut()).skip(2) {
            *n *= 2;
            *s = 2.0;
        }
        let label = format!(
            "scales.{}",
            scales
                .iter()
                .map(|s| fmt_f32(*s))
                .collect::<Vec<_>>()
                .join("x")
        );
        let sc = self.constant(&label, DataType::Float, &[scales.len()], f32_bytes(&scales));
        let attrs = vec![
            attr_string("mode", "linear"),
            attr_string("coordinate_transformation_mode", "half_pixel"),
        ];
        self.node("Resize", "Prolong", &[x, "", &sc], attrs, shape)
    }

    fn class_softmax(&mut self, x: &String) -> String {
        let shape = self.shape(x);
        self.softmax_axis1(x, "ClassSoftmax", shape)
    }
}

/// The input shape `[1, in, H, W]` / `[1, in, D, H, W]` for spatial size `[D, H, W]`, after
/// checking that the V-cycle can run on it.
fn input_shape(model: &Model, size: [usize; 3]) -> Result<Vec<usize>, ExportError> {
    let cfg = model.config();
    let bad = |reason: String| ExportError::Shape {
        shape: size,
        reason,
    };
    let factor = 1usize << (cfg.grids - 1);
    let [d, h, w] = size;
    let spatial: &[usize] = if cfg.dims == 3 { &[d, h, w] } else { &[h, w] };
    if cfg.dims == 2 && d != 1 {
        return Err(bad(format!("a 2D model needs D = 1, got D = {d}")));
    }
    if spatial.iter().any(|&s| s == 0 || !s.is_multiple_of(factor)) {
        return Err(bad(format!(
            "every spatial size must be a positive multiple of 2^(grids-1) = {factor} \
             ({} grids); {spatial:?} is not",
            cfg.grids
        )));
    }
    let mut shape = vec![1, cfg.in_channels];
    shape.extend_from_slice(spatial);
    Ok(shape)
}

/// Lowers `model` to an ONNX model for a fixed input size `[D, H, W]` (`D = 1` in 2D):
/// `shape`, or the config's `input_size` when `None`. Fails on an invalid config, weights that
/// do not match it, or a size not divisible by `2^(grids-1)` on every spatial axis.
pub fn build_onnx(model: &Model, shape: Option<[usize; 3]>) -> Result<ModelProto, ExportError> {
    build_onnx_variant(model, shape, OnnxVariant::Plain)
}

/// [`build_onnx`] for either variant of the graph. The tuned one says so in its metadata
/// (`msnet.onnx_variant`).
pub fn build_onnx_variant(
    model: &Model,
    shape: Option<[usize; 3]>,
    variant: OnnxVariant,
) -> Result<ModelProto, ExportError> {
    let cfg = model.config();
    cfg.validate()?;
    model.weights.check(&model.spec)?;
    if let Some((name, index)) = model.weights.first_non_finite(&model.spec) {
        return Err(ExportError::NonFinite {
            name: name.into(),
            index,
        });
    }
    let size = shape.unwrap_or(cfg.input_size);
    let in_shape = input_shape(model, size)?;

    let mut lowering = OnnxLowering::with_variant(&model.spec, &model.weights, variant);
    let image = lowering.input(INPUT, &in_shape);
    let out = Graph::record_at(&model.spec, size).lower(&mut lowering, image);
    let graph = lowering.finish(&out, OUTPUT)?;

    let config_json = serde_json::to_string(cfg)
        .map_err(|e| ExportError::Structure(format!("cannot serialise the config: {e}")))?;
    let meta = |key: &str, value: String| StringStringEntryProto {
        key: key.into(),
        value,
    };
    let mut metadata_props = vec![
        meta("msnet.config", config_json),
        meta("msnet.input_size", format!("{size:?}")),
    ];
    if variant == OnnxVariant::Tuned {
        metadata_props.push(meta("msnet.onnx_variant", "tuned".into()));
    }
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: PRODUCER.into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "msnet".into(),
        model_version: 1,
        doc_string: format!(
            "MSNet {}D, {} input channels, {} classes ({}), input {:?} in [0, 1]",
            cfg.dims,
            cfg.in_channels,
            cfg.classes,
            cfg.class_names.join(", "),
            &in_shape[2..]
        ),
        graph: Some(graph),
        metadata_props,
        ..Default::default()
    })
}

/// [`build_onnx`], encoded as ONNX protobuf bytes.
pub fn onnx_bytes(model: &Model, shape: Option<[usize; 3]>) -> Result<Vec<u8>, ExportError> {
    Ok(build_onnx(model, shape)?.encode_to_vec())
}

/// [`build_onnx`], written to `path` atomically (readers never see a partial file).
pub fn write_onnx(
    model: &Model,
    shape: Option<[usize; 3]>,
    path: &Path,
) -> Result<(), ExportError> {
    let bytes = onnx_bytes(model, shape)?;
    msnet::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

/// Structural checks of an exported graph, independent of any runtime: opset `ai.onnx` ≥ 17
/// declared; every node has the inputs its operator takes, each of them a graph input, an
/// initializer or the output of an earlier node; no value is produced twice; every graph
/// output is produced.
pub fn check_structure(proto: &ModelProto) -> Result<(), ExportError> {
    let bad = |m: String| Err(ExportError::Structure(m));
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    match opset {
        Some(v) if v >= OPSET => {}
        Some(v) => return bad(format!("declares ai.onnx opset {v}, need >= {OPSET}")),
        None => return bad("declares no ai.onnx opset".into()),
    }
    let Some(graph) = &proto.graph else {
        return bad("the model has no graph".into());
    };
    let mut known: HashSet<&str> = HashSet::new();
    for v in &graph.input {
        if !known.insert(&v.name) {
            return bad(format!("graph input `{}` declared twice", v.name));
        }
    }
    for t in &graph.initializer {
        if !known.insert(&t.name) {
            return bad(format!("initializer `{}` declared twice", t.name));
        }
    }
    for (i, node) in graph.node.iter().enumerate() {
        let label = format!("node #{i} `{}` ({})", node.name, node.op_type);
        if let Some(n) = arity(&node.op_type)
            && node.input.len() != n
        {
            return bad(format!(
                "{label} has {} inputs, {} takes {n}",
                node.input.len(),
                node.op_type
            ));
        }
        for (j, input) in node.input.iter().enumerate() {
            // "" marks an omitted optional input (Resize's roi).
            if input.is_empty() && !(node.op_type == "Resize" && j == 1) {
                return bad(format!("{label}: input {j} is empty"));
            }
            if !input.is_empty() && !known.contains(input.as_str()) {
                return bad(format!(
                    "{label}: input {j} `{input}` is neither a graph input, an initializer \
                     nor the output of an earlier node"
                ));
            }
        }
        if node.output.is_empty() {
            return bad(format!("{label} has no output"));
        }
        for output in &node.output {
            if !known.insert(output) {
                return bad(format!("{label}: value `{output}` is produced twice"));
            }
        }
    }
    if graph.output.is_empty() {
        return bad("the graph declares no output".into());
    }
    for output in &graph.output {
        if !known.contains(output.name.as_str()) {
            return bad(format!("graph output `{}` is never produced", output.name));
        }
    }
    Ok(())
}

/// Checks that the graph holds every weight of `model` as an f32 initializer of the layer's
/// name and shape, bit for bit, and no other tensor under a weight name.
pub fn check_weights(proto: &ModelProto, model: &Model) -> Result<(), ExportError> {
    let Some(graph) = &proto.graph else {
        return Err(ExportError::Structure("the model has no graph".into()));
    };
    let by_name: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    for layer in &model.spec.convs {
        let mismatch = |reason: String| ExportError::WeightMismatch {
            name: layer.name.clone(),
            reason,
        };
        let t = by_name
            .get(layer.name.as_str())
            .ok_or_else(|| mismatch("missing from the graph".into()))?;
        let expected = model
            .weights
            .tensors
            .get(layer.index)
            .ok_or_else(|| mismatch("the model has no such tensor".into()))?;
        if t.data_type != DataType::Float as i32 {
            return Err(mismatch(format!("data type {} is not FLOAT", t.data_type)));
        }
        let dims: Vec<i64> = layer.shape().iter().map(|&d| d as i64).collect();
        if t.dims != dims {
            return Err(mismatch(format!("dims {:?}, expected {dims:?}", t.dims)));
        }
        let found: Vec<u32> = if !t.raw_data.is_empty() {
            if !t.raw_data.len().is_multiple_of(4) {
                return Err(mismatch(format!(
                    "raw_data of {} bytes is not a whole number of f32",
                    t.raw_data.len()
                )));
            }
            t.raw_data
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            t.float_data.iter().map(|v| v.to_bits()).collect()
        };
        if found.len() != expected.len() {
            return Err(mismatch(format!(
                "{} values, the weights have {}",
                found.len(),
                expected.len()
            )));
        }
        if let Some(i) = found
            .iter()
            .zip(expected)
            .position(|(a, b)| *a != b.to_bits())
        {
            return Err(mismatch(format!(
                "value {i} is {} (bits {:#010x}), the weights hold {} (bits {:#010x})",
                f32::from_bits(found[i]),
                found[i],
                expected[i],
                expected[i].to_bits()
            )));
        }
    }
    Ok(())
}
