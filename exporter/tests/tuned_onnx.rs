//! The tuned ONNX variant against the plain export: the same outputs (tract on both), the
//! rewrites it promises (no ConvTranspose, no Softmax, no repeated node), and
//! `write_tuned_onnx` end to end on an exported model directory.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::PathBuf;

use burn::tensor::Device;
use msnet::config::{InitSpec, Normalization};
use msnet::graph::Lowering;
use msnet::{Config, Model, Spec, weights};
use msnet_exporter::onnx::{IR_VERSION, OPSET};
use msnet_exporter::tuned::op_counts;
use msnet_exporter::{
    ExportError, ONNX_FILE, OnnxLowering, OnnxVariant, TUNED_ONNX_FILE, TractModel,
    build_onnx_variant, compare, export, write_tuned_onnx,
};
use msnet_io::phantom;
use msnet_trainer::Predictor;
use prost::Message;
use tract_onnx::pb::{ModelProto, OperatorSetIdProto};

fn model(dims: usize, size: [usize; 3], seed: u64) -> Model {
    let mut config = Config::new(dims, 3, 3);
    config.input_size = size;
    config.normalization = Normalization {
        mean: vec![0.5, 0.4, 0.3],
        std: vec![0.25, 0.2, 0.3],
    };
    let spec = Spec::new(&config);
    let weights = weights::init(&spec, seed, InitSpec::default());
    Model { spec, weights }
}

fn run(proto: &ModelProto, input: &[f32]) -> Vec<f32> {
    TractModel::from_onnx(&proto.encode_to_vec())
        .unwrap()
        .run(input)
        .unwrap()
}

fn count(ops: &BTreeMap<String, usize>, op: &str) -> usize {
    ops.get(op).copied().unwrap_or(0)
}

/// Checks the tuned graph's promises against the plain one, and that both give the same
/// probabilities on a phantom; returns the tuned graph.
fn tuned_agrees_with_plain(m: &Model, seed: u64) -> ModelProto {
    let cfg = m.config();
    let plain = build_onnx_variant(m, None, OnnxVariant::Plain).unwrap();
    let tuned = build_onnx_variant(m, None, OnnxVariant::Tuned).unwrap();
    let (p, t) = (op_counts(&plain), op_counts(&tuned));
    println!("{}D plain: {p:?}\n{}D tuned: {t:?}", cfg.dims, cfg.dims);

    assert_eq!(count(&t, "ConvTranspose"), 0);
    assert_eq!(count(&t, "Softmax"), 0);
    assert_eq!(
        count(&t, "Conv"),
        count(&p, "Conv") + count(&p, "ConvTranspose")
    );
    for op in ["ReduceMax", "Exp", "ReduceSum", "Div"] {
        assert_eq!(count(&t, op), count(&p, "Softmax"), "{op}");
    }
    // On the finest grid u0 = f: v0·f and v0·u0 are one node.
    assert_eq!(count(&t, "Mul"), count(&p, "Mul") - 1);
    let mut seen = HashSet::new();
    for node in &tuned.graph.as_ref().unwrap().node {
        let mut inputs = node.input.clone();
        if ["Add", "Mul"].contains(&node.op_type.as_str()) {
            inputs.sort();
        }
        let attrs: Vec<Vec<u8>> = node.attribute.iter().map(Message::encode_to_vec).collect();
        assert!(
            seen.insert((node.op_type.clone(), inputs, attrs)),
            "node `{}` repeats an earlier one",
            node.name
        );
    }

    let sample = phantom::nested_ellipses(seed, cfg.in_channels, cfg.input_size, cfg.classes);
    let from_plain = run(&plain, &sample.image);
    let from_tuned = run(&tuned, &sample.image);
    let cmp = compare(&from_plain, &from_tuned, cfg.classes);
    println!(
        "{}D {:?}: tuned vs plain max abs diff {:.3e}, worst diff/tolerance {:.3}",
        cfg.dims, cfg.input_size, cmp.max_abs_diff, cmp.worst_ratio
    );
    assert!(cmp.agrees(), "{cmp:?}");
    tuned
}

#[test]
fn tuned_graph_agrees_with_the_plain_one_2d() {
    let m = model(2, [1, 32, 32], 21);
    let tuned = tuned_agrees_with_plain(&m, 3);

    // The comparison has teeth: the transposed layer's kernel transposed but not flipped is
    // another operator, and shows.
    let layer = m
        .spec
        .convs
        .iter()
        .find(|c| c.name == "down.1.T1.weight")
        .unwrap();
    let (cin, cout, taps) = (layer.in_channels, layer.out_channels, 9);
    let file = &m.weights.tensors[layer.index];
    let mut unflipped = Vec::with_capacity(file.len());
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..taps {
                unflipped.push(file[(ci * cout + co) * taps + t]);
            }
        }
    }
    let mut wrong = tuned.clone();
    let w = wrong
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "down.1.T1.weight.flipped")
        .unwrap();
    w.raw_data = unflipped.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sample = phantom::nested_ellipses(3, 3, [1, 32, 32], 3);
    let cmp = compare(&run(&tuned, &sample.image), &run(&wrong, &sample.image), 3);
    println!("unflipped kernel: max abs diff {:.3e}", cmp.max_abs_diff);
    assert!(!cmp.within_tolerance, "{cmp:?}");
}

#[test]
fn tuned_graph_agrees_with_the_plain_one_3d() {
    tuned_agrees_with_plain(&model(3, [16, 16, 16], 22), 4);
}

#[test]
fn tuned_softmax_holds_where_every_score_is_far_below_zero() {
    // exp(-150) is 0 in f32: without the max subtracted first, these pixels would be 0 / 0.
    let m = model(2, [1, 16, 16], 1);
    let (phases, channels) = (2, 4);
    let mut lowering = OnnxLowering::with_variant(&m.spec, &m.weights, OnnxVariant::Tuned);
    let x = lowering.input("x", &[1, channels, 2, 2]);
    let y = lowering.phase_softmax(&x, phases);
    let graph = lowering.finish(&y, "y").unwrap();
    let proto = ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    let input: Vec<f32> = (0..channels * 4).map(|i| -150.0 - 0.5 * i as f32).collect();
    let out = run(&proto, &input);
    // Channel c = n·I + i: the softmax runs over n for each (i, pixel).
    let group = channels / phases;
    for i in 0..group {
        for px in 0..4 {
            let at = |n: usize| (n * group + i) * 4 + px;
            let z: Vec<f64> = (0..phases).map(|n| input[at(n)] as f64).collect();
            let max = z.iter().cloned().fold(f64::MIN, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            for n in 0..phases {
                let expected = (z[n] - max).exp() / sum;
                let got = out[at(n)] as f64;
                assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
            }
        }
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msnet-tuned-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn write_tuned_onnx_checks_against_the_golden_bundle() {
    let m = model(2, [1, 32, 32], 23);
    let dir = scratch("write");
    m.save(&dir).unwrap();
    let reference = Predictor::new(&m, Device::flex());
    export(&dir, None, &reference, &mut |_| {}).unwrap();

    let report = write_tuned_onnx(&dir, &mut |_| {}).unwrap();
    assert_eq!(report.size, [1, 32, 32]);
    assert_eq!(report.cases.len(), 3);
    for c in &report.cases {
        println!(
            "{}: tuned vs golden {:.3e}, tuned vs plain {:.3e}",
            c.name, c.tuned.max_abs_diff, c.tuned_vs_plain
        );
        assert!(c.tuned.agrees(), "{}: {:?}", c.name, c.tuned);
    }
    let written = fs::read(dir.join(TUNED_ONNX_FILE)).unwrap();
    assert_eq!(written.len(), report.bytes);
    let proto = ModelProto::decode(&written[..]).unwrap();
    assert_eq!(op_counts(&proto), report.tuned_ops);
    assert_eq!(count(&report.tuned_ops, "ConvTranspose"), 0);
    assert!(count(&report.plain_ops, "ConvTranspose") > 0);

    // A model.onnx that is not the one the golden bundle was made with: refused, nothing
    // written.
    fs::remove_file(dir.join(TUNED_ONNX_FILE)).unwrap();
    let mut onnx = fs::read(dir.join(ONNX_FILE)).unwrap();
    onnx.push(0);
    fs::write(dir.join(ONNX_FILE), onnx).unwrap();
    let err = write_tuned_onnx(&dir, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ExportError::Golden(_)), "{err}");
    assert!(!dir.join(TUNED_ONNX_FILE).exists());
    let _ = fs::remove_dir_all(&dir);
}
