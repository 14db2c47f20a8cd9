//! `export` end to end on random-weight models: the written ONNX (tract-onnx), the NNEF plan
//! reloaded by tract-nnef alone, the runtime plan (msnet-runtime) and the burn reference agree
//! on every golden input; failed exports leave the model directory as it was.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use msnet::config::{InitSpec, Normalization};
use msnet::model::WEIGHTS_FILE;
use msnet::{Config, Model, Spec, weights};
use msnet_eval::golden::{self, Reference};
use msnet_exporter::stage::{JOURNAL_FILE, Staging, recover};
use msnet_exporter::{
    ARTIFACTS, ExportError, NNEF_FILE, ONNX_FILE, PLAN_FILE, TractModel, check_structure,
    check_weights, export,
};
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_trainer::Predictor;
use prost::Message;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msnet-export-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn model(dims: usize, in_channels: usize, classes: usize, size: [usize; 3], seed: u64) -> Model {
    let mut config = Config::new(dims, in_channels, classes);
    config.input_size = size;
    if in_channels == 3 {
        // A non-identity normalisation, so the graph's first Sub / Mul are exercised.
        config.normalization = Normalization {
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.25, 0.2, 0.3],
        };
    }
    let spec = Spec::new(&config);
    let weights = weights::init(&spec, seed, InitSpec::default());
    Model { spec, weights }
}

/// Every file and folder under `dir` (recursively), by relative path, with the bytes of each
/// file: a directory's complete state.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(dir).unwrap().to_path_buf();
        if path.is_dir() {
            out.insert(rel.clone(), None);
            out.extend(snapshot(&path).into_iter().map(|(p, b)| (rel.join(p), b)));
        } else {
            out.insert(rel, Some(fs::read(&path).unwrap()));
        }
    }
    out
}

/// Makes `dir` hold exactly `state` (a [`snapshot`]).
fn restore(dir: &Path, state: &BTreeMap<PathBuf, Option<Vec<u8>>>) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    // Sorted paths put every folder before its contents.
    for (rel, bytes) in state {
        match bytes {
            None => fs::create_dir(dir.join(rel)).unwrap(),
            Some(b) => fs::write(dir.join(rel), b).unwrap(),
        }
    }
}

fn quiet(_: &str) {}

/// Exports a saved random model and checks every artifact independently of the export's own
/// self-check.
fn export_and_verify(m: &Model, tag: &str) {
    let dir = scratch(tag);
    m.save(&dir).unwrap();
    let reference = Predictor::new(m, Device::flex());
    let report = export(&dir, None, &reference, &mut quiet).unwrap();
    let cfg = m.config();

    // The ONNX file: structurally valid, initializers bit for bit the weights.
    let onnx = fs::read(dir.join(ONNX_FILE)).unwrap();
    let proto = tract_onnx::pb::ModelProto::decode(onnx.as_slice()).unwrap();
    check_structure(&proto).unwrap();
    check_weights(&proto, m).unwrap();

    // The NNEF plan names only the tract_core registry, so tract-nnef alone reloads it.
    let nnef = fs::read(dir.join(NNEF_FILE)).unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&nnef[..]), &mut tar).unwrap();
    let text = String::from_utf8_lossy(&tar);
    assert!(text.contains("extension tract_registry tract_core;"));
    assert!(
        !text.contains("tract_onnx"),
        "the plan needs tract-onnx's operators"
    );

    // The bundle reads back, belongs to these files, and holds the burn outputs.
    let (manifest, cases) = golden::load(&dir).unwrap();
    golden::check_digests(&dir, &manifest).unwrap();
    assert_eq!(cases.len(), 3);
    assert_eq!(
        manifest.input_shape,
        golden::tensor_shape(cfg.dims, cfg.in_channels, cfg.input_size)
    );
    let mut burn = golden::AtSize(&reference, cfg.input_size);
    let mut onnx_model = TractModel::from_onnx(&onnx).unwrap();
    let mut nnef_model = TractModel::from_nnef(&nnef).unwrap();
    let plan_buffer = PlanBuffer::from_bytes(&fs::read(dir.join(PLAN_FILE)).unwrap());
    let mut session = Session::new(plan_buffer.plan().unwrap()).unwrap();
    let diffs = golden::check_engines(
        &cases,
        &mut [
            ("burn", &mut burn),
            ("tract-onnx", &mut onnx_model),
            ("tract-nnef", &mut nnef_model),
            ("msnet-runtime", &mut session),
        ],
        cfg.classes,
        manifest.tolerance,
    )
    .unwrap();
    for (case, diff) in cases.iter().zip(&diffs) {
        let [burn, others @ ..] = &diff.engines[..] else {
            unreachable!("four engines were run")
        };
        assert_eq!(
            burn.output, case.output,
            "golden output of `{}` is not burn's",
            case.name
        );
        for e in others {
            let (engine, cmp) = (&e.engine, &e.comparison);
            println!(
                "{tag} {:<9} burn vs {engine}: max abs diff {:.3e}, worst diff/tolerance {:.3}",
                case.name, cmp.max_abs_diff, cmp.worst_ratio
            );
            assert!(cmp.agrees(), "{tag} {} {engine}: {cmp:?}", case.name);
        }
    }
    // The phantom case must exercise more than one class, or argmax equality says little.
    let labels = msnet_labels::argmax(&cases[0].output, cfg.classes);
    assert!(
        labels.iter().any(|&l| l != labels[0]),
        "constant prediction"
    );
    assert_eq!(report.cases.len(), 3);
    for c in &report.cases {
        // The probe moves the output, but by float32-rounding amounts on a sane model.
        println!(
            "{tag} {:<9} rounding sensitivity {:.3e}",
            c.name, c.rounding_sensitivity
        );
        assert!(
            c.rounding_sensitivity > 0.0 && c.rounding_sensitivity < golden::ATOL,
            "{tag} {}: {}",
            c.name,
            c.rounding_sensitivity
        );
    }
    assert!(
        report
            .cases
            .iter()
            .all(|c| c.onnx.agrees() && c.nnef.agrees() && c.runtime.agrees())
    );
    let p = report.plan;
    println!(
        "{tag}: plan of {} ops, arena {} floats, liveness bound {} ({:.3}×)",
        p.ops,
        p.arena_len,
        p.arena_lower_bound,
        p.arena_len as f64 / p.arena_lower_bound as f64
    );
    assert!(p.arena_len as f64 <= 1.15 * p.arena_lower_bound as f64);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_2d_32_agrees_across_engines() {
    export_and_verify(&model(2, 3, 3, [1, 32, 32], 11), "2d-32");
}

#[test]
fn export_2d_128_agrees_across_engines() {
    export_and_verify(&model(2, 3, 3, [1, 128, 128], 12), "2d-128");
}

#[test]
fn export_3d_16x32x32_agrees_across_engines() {
    export_and_verify(&model(3, 1, 4, [16, 32, 32], 13), "3d-16x32x32");
}

#[test]
fn export_at_another_shape_and_again_replaces_the_artifacts() {
    let m = model(2, 1, 2, [1, 32, 32], 14);
    let dir = scratch("reshape");
    m.save(&dir).unwrap();
    let reference = Predictor::new(&m, Device::flex());
    export(&dir, None, &reference, &mut quiet).unwrap();
    let first = fs::read(dir.join(NNEF_FILE)).unwrap();
    let report = export(&dir, Some([1, 48, 64]), &reference, &mut quiet).unwrap();
    assert_eq!(report.manifest.input_shape, vec![1, 1, 48, 64]);
    let (manifest, _) = golden::load(&dir).unwrap();
    golden::check_digests(&dir, &manifest).unwrap();
    assert_ne!(first, fs::read(dir.join(NNEF_FILE)).unwrap());
    // Deterministic: the same export twice gives the same bytes.
    let again = export(&dir, Some([1, 48, 64]), &reference, &mut quiet).unwrap();
    assert_eq!(again.manifest, report.manifest);
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "staging left behind: {names:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_kill_at_every_step_of_the_swap_leaves_the_old_or_the_new_export() {
    let m = model(2, 1, 2, [1, 32, 32], 17);
    let dir = scratch("kill");
    m.save(&dir).unwrap();
    let reference = Predictor::new(&m, Device::flex());
    export(&dir, None, &reference, &mut quiet).unwrap();
    let old = snapshot(&dir);
    export(&dir, Some([1, 48, 48]), &reference, &mut quiet).unwrap();
    let new = snapshot(&dir);
    for file in [ONNX_FILE, NNEF_FILE, PLAN_FILE] {
        assert_ne!(old[Path::new(file)], new[Path::new(file)], "{file}");
    }

    // The new export's artifacts staged over the old export, the swap killed after each of
    // its changes in turn, then recovered.
    let stage_new = || {
        let stage = Staging::new(&dir).unwrap();
        for (rel, bytes) in &new {
            if !ARTIFACTS.iter().any(|a| rel.starts_with(a)) {
                continue;
            }
            let to = stage.path(rel.to_str().unwrap());
            match bytes {
                None => fs::create_dir(&to).unwrap(),
                Some(b) => fs::write(&to, b).unwrap(),
            }
        }
        stage
    };
    let mut kills = 0;
    for changes in 0.. {
        restore(&dir, &old);
        if !stage_new().commit_killed_after(&ARTIFACTS, changes) {
            break;
        }
        kills += 1;
        recover(&dir).unwrap();
        let after = snapshot(&dir);
        let names: Vec<_> = after
            .keys()
            .filter(|p| p.components().count() == 1)
            .collect();
        assert!(
            after == old || after == new,
            "killed after {changes} changes, recovered to {names:?}"
        );
        // From the journal's rename on, the swap is completed.
        assert_eq!(after == new, changes > 0, "killed after {changes} changes");
    }
    // The journal, two moves per artifact, the journal's removal, the staging folder's.
    assert_eq!(kills, 1 + 2 * ARTIFACTS.len() + 1 + 1);

    // The next export recovers by itself, before anything else: it completes the killed swap
    // and removes the staging folders of dead exports, also those without a lock file.
    restore(&dir, &old);
    assert!(stage_new().commit_killed_after(&ARTIFACTS, 4));
    assert!(dir.join(JOURNAL_FILE).exists());
    let unlocked = dir.join(".export-4000000-0");
    fs::create_dir(&unlocked).unwrap();
    fs::write(
        unlocked.join(ONNX_FILE),
        "from before staging folders had locks",
    )
    .unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::open(&unlocked)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let mut log = Vec::new();
    export(&dir, Some([1, 48, 48]), &reference, &mut |l| {
        log.push(l.to_string())
    })
    .unwrap();
    assert_eq!(snapshot(&dir), new, "{log:?}");
    assert!(log[0].contains("completed the swap"), "{log:?}");
    assert!(log[1].contains(".export-"), "{log:?}");
    fs::remove_dir_all(&dir).unwrap();
}

/// A reference that disagrees with the model: the artifacts cannot match it.
struct Skewed(Predictor, f32);

impl Reference for Skewed {
    fn name(&self) -> String {
        "skewed".into()
    }
    fn forward(&self, input: &[f32], size: [usize; 3]) -> Vec<f32> {
        let mut p = self.0.forward(input, size);
        p.iter_mut().for_each(|v| *v += self.1);
        p
    }
}

#[test]
fn failed_self_check_leaves_the_directory_as_it_was() {
    let m = model(2, 3, 3, [1, 32, 32], 15);
    let dir = scratch("selfcheck");
    m.save(&dir).unwrap();
    // A previous export's files must survive a failed one untouched.
    let predictor = Predictor::new(&m, Device::flex());
    export(&dir, None, &predictor, &mut quiet).unwrap();
    let before = snapshot(&dir);

    // Off by 3e-4 everywhere: beyond atol 1e-4 + rtol 5e-4 for every probability.
    let skewed = Skewed(Predictor::new(&m, Device::flex()), 3e-4);
    let e = export(&dir, None, &skewed, &mut quiet).unwrap_err();
    assert!(matches!(e, ExportError::SelfCheck(_)), "{e}");
    let msg = e.to_string();
    for part in [
        "case `phantom`",
        "tract-onnx",
        "tract-nnef",
        "msnet-runtime",
    ] {
        assert!(msg.contains(part), "`{part}` missing from: {msg}");
    }
    assert_eq!(
        snapshot(&dir),
        before,
        "a failed export changed the directory"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Rewrites `model.safetensors` in `dir` through `edit` on (name, shape, values).
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), view.unwrap())
        })
        .collect();
    fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Runs `export` on a broken model directory: it must fail with a message holding every one
/// of `expected`, and leave the directory as it was.
fn expect_failure(dir: &Path, shape: Option<[usize; 3]>, expected: &[&str]) {
    let m = model(2, 3, 3, [1, 32, 32], 16);
    let reference = Predictor::new(&m, Device::flex());
    let before = snapshot(dir);
    let e = export(dir, shape, &reference, &mut quiet)
        .unwrap_err()
        .to_string();
    println!("{}: {e}", dir.display());
    for part in expected {
        assert!(e.contains(part), "`{part}` missing from: {e}");
    }
    assert_eq!(
        snapshot(dir),
        before,
        "a failed export changed {}",
        dir.display()
    );
}

#[test]
fn bad_models_and_shapes_are_clear_errors() {
    let m = model(2, 3, 3, [1, 32, 32], 16);
    let fresh = |tag: &str| {
        let dir = scratch(tag);
        m.save(&dir).unwrap();
        dir
    };

    let dir = fresh("missing");
    edit_weights(&dir, |t| t.retain(|(n, _, _)| n != "up.3.K.weight"));
    expect_failure(&dir, None, &["up.3.K.weight"]);

    let dir = fresh("extra");
    edit_weights(&dir, |t| t.push(("bias".into(), vec![2], vec![0.0, 1.0])));
    expect_failure(&dir, None, &["bias"]);

    let dir = fresh("shape");
    edit_weights(&dir, |t| {
        let w = t
            .iter_mut()
            .find(|(n, _, _)| n == "down.2.L1.weight")
            .unwrap();
        w.1 = vec![16, 16, 9];
    });
    expect_failure(
        &dir,
        None,
        &["down.2.L1.weight", "[16, 16, 9]", "[16, 16, 3, 3]"],
    );

    let dir = fresh("nan");
    edit_weights(&dir, |t| t[4].2[2] = f32::NAN);
    expect_failure(&dir, None, &["non-finite"]);

    // Finite but huge: the error names the largest weight as the cause instead of only
    // reporting the differences between engines (or an infinite one, when float32 overflows).
    let dir = fresh("huge");
    edit_weights(&dir, |t| {
        let w = t.iter_mut().find(|(n, _, _)| n == "head.weight").unwrap();
        w.2.iter_mut().for_each(|v| *v *= 1e30);
    });
    expect_failure(&dir, None, &["largest weight", "`head.weight`", "diverged"]);

    let dir = fresh("divisible");
    expect_failure(&dir, Some([1, 40, 40]), &["[1, 40, 40]", "16"]);

    let dir = scratch("nothing");
    expect_failure(&dir.join("absent"), None, &["absent"]);
    for tag in [
        "missing",
        "extra",
        "shape",
        "nan",
        "huge",
        "divisible",
        "nothing",
    ] {
        let _ = fs::remove_dir_all(scratch(tag));
    }
}
