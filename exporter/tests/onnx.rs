//! The ONNX export against the burn reference (run with tract), and its structural checks.

use std::time::Instant;

use burn::tensor::Device;
use msnet::config::{InitSpec, Normalization};
use msnet::{Config, Model, Spec, weights};
use msnet_eval::golden::{self, LoadedCase, Tolerance};
use msnet_exporter::onnx::{INPUT, OPSET, OUTPUT};
use msnet_exporter::{
    ExportError, TractModel, build_onnx, check_structure, check_weights, compare, onnx_bytes,
    run_onnx_tract, write_onnx,
};
use msnet_io::phantom;
use msnet_trainer::Predictor;
use prost::Message;

fn model(dims: usize, in_channels: usize, classes: usize, size: [usize; 3], seed: u64) -> Model {
    let mut config = Config::new(dims, in_channels, classes);
    config.input_size = size;
    let spec = Spec::new(&config);
    let weights = weights::init(&spec, seed, InitSpec::default());
    Model { spec, weights }
}

/// Runs burn and tract on the same phantom (a one-case golden bundle) and asserts they agree;
/// returns the max abs diff.
fn burn_vs_tract(model: &Model, seed: u64) -> f32 {
    let cfg = model.config();
    let [d, h, w] = cfg.input_size;
    let sample = phantom::nested_ellipses(seed, cfg.in_channels, cfg.input_size, cfg.classes);

    let t = Instant::now();
    let reference = Predictor::new(model, Device::flex())
        .probabilities(&[&sample])
        .remove(0);
    let burn_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let bytes = onnx_bytes(model, None).unwrap();
    let mut tract = TractModel::from_onnx(&bytes).unwrap();
    let shape = golden::tensor_shape(cfg.dims, cfg.in_channels, [d, h, w]);
    assert_eq!(tract.input_shape(), shape);
    let case = LoadedCase {
        name: "phantom".into(),
        input: sample.image.clone(),
        output: reference.clone(),
    };
    let diffs = golden::check_engines(
        &[case],
        &mut [("tract-onnx", &mut tract)],
        cfg.classes,
        Tolerance::default(),
    )
    .unwrap();
    let tract_s = t.elapsed().as_secs_f64();

    let out = &diffs[0].engines[0];
    assert_eq!(out.output.len(), reference.len());
    let cmp = out.comparison;
    println!(
        "{}D {:?}: burn vs tract max abs diff {:.3e} (burn {burn_s:.2}s, export+tract \
         {tract_s:.2}s, {} bytes of ONNX)",
        cfg.dims,
        cfg.input_size,
        cmp.max_abs_diff,
        bytes.len()
    );
    assert!(
        cmp.within_tolerance,
        "outside atol 1e-4 + rtol 5e-4: max abs diff {}",
        cmp.max_abs_diff
    );
    assert!(cmp.argmax_equal, "argmax differs");
    let labels = msnet_labels::argmax(&reference, cfg.classes);
    let mut seen = vec![false; cfg.classes];
    labels.iter().for_each(|&l| seen[l as usize] = true);
    assert!(
        seen.iter().filter(|&&s| s).count() >= 2,
        "a constant prediction would make the comparison weak"
    );
    cmp.max_abs_diff
}

#[test]
fn tract_matches_burn_2d_32_with_normalisation() {
    let mut m = model(2, 3, 3, [1, 32, 32], 11);
    // A non-identity normalisation, so the Sub / Mul of the first op are exercised.
    m.spec.config.normalization = Normalization {
        mean: vec![0.5, 0.4, 0.3],
        std: vec![0.25, 0.2, 0.3],
    };
    burn_vs_tract(&m, 5);
}

#[test]
fn comparison_catches_a_wrong_weight_or_operator() {
    // The tolerance has teeth: one finest-grid weight off, or the prolongation computed as
    // nearest-neighbour instead of linear, shows.
    let m = model(2, 3, 3, [1, 32, 32], 14);
    let sample = phantom::nested_ellipses(8, 3, [1, 32, 32], 3);
    let reference = Predictor::new(&m, Device::flex())
        .probabilities(&[&sample])
        .remove(0);
    let proto = build_onnx(&m, None).unwrap();
    let run = |proto: &tract_onnx::pb::ModelProto| {
        let out = run_onnx_tract(&proto.encode_to_vec(), &sample.image, &[1, 3, 32, 32]).unwrap();
        compare(&reference, &out, 3)
    };

    let mut wrong_weight = proto.clone();
    let w = wrong_weight
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "down.1.L1.weight")
        .unwrap();
    let v = -3.0 * f32::from_le_bytes(w.raw_data[..4].try_into().unwrap());
    w.raw_data[..4].copy_from_slice(&v.to_le_bytes());
    let cmp = run(&wrong_weight);
    println!("one weight off: max abs diff {:.3e}", cmp.max_abs_diff);
    assert!(!cmp.within_tolerance, "{cmp:?}");

    let mut nearest = proto;
    for node in &mut nearest.graph.as_mut().unwrap().node {
        for a in &mut node.attribute {
            if node.op_type == "Resize" && a.name == "mode" {
                a.s = b"nearest".to_vec();
            }
        }
    }
    let cmp = run(&nearest);
    println!(
        "nearest prolongation: max abs diff {:.3e}",
        cmp.max_abs_diff
    );
    assert!(!cmp.within_tolerance, "{cmp:?}");
}

#[test]
fn export_passes_structure_and_weight_checks() {
    let m = model(2, 3, 3, [1, 128, 128], 21);
    let proto = build_onnx(&m, None).unwrap();
    check_structure(&proto).unwrap();
    check_weights(&proto, &m).unwrap();

    assert_eq!(proto.ir_version, 8);
    assert_eq!(proto.producer_name, "msnet-edge");
    assert!(
        proto
            .opset_import
            .iter()
            .any(|o| o.domain.is_empty() && o.version == OPSET)
    );
    let graph = proto.graph.as_ref().unwrap();
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, INPUT);
    assert_eq!(graph.output.len(), 1);
    assert_eq!(graph.output[0].name, OUTPUT);

    let convs = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" || n.op_type == "ConvTranspose")
        .count();
    assert_eq!(convs, 86, "deduplicated 2D forward pass");
    assert_eq!(convs, msnet::cost::forward_cost(&m.spec).convs);

    // One initializer per weight, named as in the weight file, bit for bit (checked above);
    // constants are deduplicated.
    for layer in &m.spec.convs {
        let count = graph
            .initializer
            .iter()
            .filter(|t| t.name == layer.name)
            .count();
        assert_eq!(count, 1, "{}", layer.name);
    }
    let mut constants: Vec<(i32, &[i64], &[u8])> = graph
        .initializer
        .iter()
        .map(|t| (t.data_type, t.dims.as_slice(), t.raw_data.as_slice()))
        .collect();
    let n = constants.len();
    constants.sort();
    constants.dedup();
    assert_eq!(constants.len(), n, "duplicate initializer data");

    // Node names are unique and readable.
    let mut names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert!(
        names.contains(&"down.1.L1_0"),
        "conv nodes are named after their layer"
    );
    names.sort_unstable();
    let len = names.len();
    names.dedup();
    assert_eq!(names.len(), len, "node names are unique");
}

#[test]
fn structure_check_rejects_broken_graphs() {
    let m = model(2, 3, 3, [1, 32, 32], 22);
    let proto = build_onnx(&m, None).unwrap();

    // A node input dropped: Conv with its weight input removed.
    let mut broken = proto.clone();
    let graph = broken.graph.as_mut().unwrap();
    let conv = graph.node.iter_mut().find(|n| n.op_type == "Conv").unwrap();
    conv.input.pop();
    let e = check_structure(&broken).unwrap_err().to_string();
    assert!(e.contains("has 1 inputs"), "{e}");

    // A node's input removed from the graph: the producer of an Add input is gone.
    let mut broken = proto.clone();
    let graph = broken.graph.as_mut().unwrap();
    let add = graph.node.iter().position(|n| n.op_type == "Add").unwrap();
    let producer = graph.node[add].input[0].clone();
    graph.node.retain(|n| !n.output.contains(&producer));
    let e = check_structure(&broken).unwrap_err().to_string();
    assert!(e.contains(&format!("`{producer}`")), "{e}");
    assert!(e.contains("neither a graph input"), "{e}");

    // A weight initializer dropped.
    let mut broken = proto.clone();
    let graph = broken.graph.as_mut().unwrap();
    graph.initializer.retain(|t| t.name != "up.2.T1.weight");
    let e = check_structure(&broken).unwrap_err().to_string();
    assert!(e.contains("up.2.T1.weight"), "{e}");
    let e = check_weights(&broken, &m).unwrap_err().to_string();
    assert!(e.contains("up.2.T1.weight") && e.contains("missing"), "{e}");

    // The output never produced.
    let mut broken = proto.clone();
    broken.graph.as_mut().unwrap().output[0].name = "nothing".into();
    let e = check_structure(&broken).unwrap_err().to_string();
    assert!(e.contains("`nothing` is never produced"), "{e}");

    // An older opset.
    let mut broken = proto.clone();
    broken.opset_import[0].version = 11;
    let e = check_structure(&broken).unwrap_err().to_string();
    assert!(e.contains("opset 11"), "{e}");

    // run_onnx_tract reports a broken graph as an error, not a panic.
    let bytes = broken.encode_to_vec();
    let input = vec![0.5; 3 * 32 * 32];
    let e = run_onnx_tract(&bytes, &input, &[1, 3, 32, 32]).unwrap_err();
    assert!(matches!(e, ExportError::Structure(_)), "{e}");
    let e = run_onnx_tract(b"not onnx at all", &input, &[1, 3, 32, 32]).unwrap_err();
    assert!(matches!(e, ExportError::Decode(_)), "{e}");
    let e = run_onnx_tract(&proto.encode_to_vec(), &input, &[1, 3, 32, 31]).unwrap_err();
    assert!(e.to_string().contains("[1, 3, 32, 31]"), "{e}");

    // A single flipped weight bit is found.
    let mut broken = proto;
    let graph = broken.graph.as_mut().unwrap();
    let w = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == "down.3.K.weight")
        .unwrap();
    w.raw_data[40] ^= 1;
    let e = check_weights(&broken, &m).unwrap_err().to_string();
    assert!(
        e.contains("down.3.K.weight") && e.contains("value 10"),
        "{e}"
    );
}

#[test]
fn shapes_not_divisible_by_16_are_rejected() {
    let m = model(2, 3, 3, [1, 32, 32], 23);
    let e = build_onnx(&m, Some([1, 120, 128])).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ExportError::Shape { .. }), "{text}");
    assert!(text.contains("[1, 120, 128]"), "{text}");
    assert!(text.contains("16"), "{text}");
    let e = build_onnx(&m, Some([2, 32, 32])).unwrap_err().to_string();
    assert!(e.contains("D = 1"), "{e}");

    // Another valid shape than the config's is accepted and fixed in the graph.
    let proto = build_onnx(&m, Some([1, 48, 64])).unwrap();
    check_structure(&proto).unwrap();
    let dims: Vec<i64> = match &proto.graph.unwrap().input[0].r#type {
        Some(tract_onnx::pb::TypeProto {
            value: Some(tract_onnx::pb::type_proto::Value::TensorType(t)),
            ..
        }) => t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value {
                Some(tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                _ => -1,
            })
            .collect(),
        _ => panic!("input has no tensor type"),
    };
    assert_eq!(dims, vec![1, 3, 48, 64]);
}

#[test]
fn bad_weights_are_an_error_not_a_panic() {
    let mut m = model(2, 3, 3, [1, 32, 32], 24);
    m.weights.tensors[5].pop();
    let e = build_onnx(&m, None).unwrap_err();
    assert!(matches!(e, ExportError::Weights(_)), "{e}");

    let mut m = model(2, 3, 3, [1, 32, 32], 24);
    m.weights.tensors[7][3] = f32::NAN;
    let e = build_onnx(&m, None).unwrap_err().to_string();
    assert!(
        e.contains(&m.spec.convs[7].name) && e.contains("index 3"),
        "{e}"
    );
}

#[test]
fn write_onnx_writes_the_encoded_model() {
    let m = model(2, 3, 3, [1, 32, 32], 25);
    let dir = std::env::temp_dir().join(format!("msnet-exporter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    write_onnx(&m, None, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, onnx_bytes(&m, None).unwrap());
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    check_weights(&proto, &m).unwrap();
    let e = write_onnx(&m, None, &dir.join("no/such/dir/model.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/dir"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
