//! Every command that loads a model refuses a config and a plan that do not belong together,
//! and `verify` reports only what it checked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use common::{msnet_run, scratch, shipped_model as shipped, text};

/// A device copy of a shipped model in `dir/model`: config.json, model.msplan and, when
/// `golden`, its golden bundle.
fn device_copy(dir: &Path, name: &str, golden: bool) -> PathBuf {
    let (from, to) = (shipped(name), dir.join("model"));
    std::fs::create_dir_all(&to).unwrap();
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    if golden {
        std::fs::create_dir_all(to.join("golden")).unwrap();
        for e in std::fs::read_dir(from.join("golden")).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join("golden").join(e.file_name())).unwrap();
        }
    }
    to
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(path, json.to_string()).unwrap();
}

/// Runs every command that loads the model in `model` (segment on a shipped sample image)
/// and returns each one's output.
fn every_command(dir: &Path, model: &Path) -> Vec<(&'static str, Output)> {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let m = model.to_str().unwrap();
    // A fresh output folder each time, so that no mask from an earlier run is in the way.
    let out = dir.join(format!("out-{}", RUN.fetch_add(1, Ordering::Relaxed)));
    let image = shipped("fundus-disc-cup").join("golden/phantom.png");
    let commands: [(&str, Vec<&str>); 4] = [
        ("info", vec!["info", "--model", m]),
        ("verify", vec!["verify", "--model", m]),
        (
            "bench",
            vec!["bench", "--model", m, "--runs", "1", "--warmup", "0"],
        ),
        (
            "segment",
            vec![
                "segment",
                "--model",
                m,
                "--out",
                out.to_str().unwrap(),
                image.to_str().unwrap(),
            ],
        ),
    ];
    commands
        .into_iter()
        .map(|(name, args)| (name, msnet_run(&args)))
        .collect()
}

/// Every command fails, and says each of `expected`.
fn all_refuse(dir: &Path, model: &Path, expected: &[&str]) {
    for (command, o) in every_command(dir, model) {
        assert!(!o.status.success(), "{command} accepted it: {}", text(&o));
        for part in expected {
            assert!(
                text(&o).contains(part),
                "{command}: `{part}` missing from: {}",
                text(&o)
            );
        }
    }
}

#[test]
fn a_config_from_another_model_is_refused_by_every_command() {
    let dir = scratch("other-config");
    let model = device_copy(&dir, "fundus-disc-cup", false);
    for (command, o) in every_command(&dir, &model) {
        // Without a golden bundle, verify has nothing to compare with; the others run.
        assert_eq!(o.status.success(), command != "verify", "{}", text(&o));
    }
    // Same dimensions, channels and classes; another size and other class names.
    std::fs::copy(
        shipped("wbc").join("config.json"),
        model.join("config.json"),
    )
    .unwrap();
    all_refuse(
        &dir,
        &model,
        &[
            "model.msplan",
            "[1, 128, 128]",
            "config.json",
            "[1, 112, 112]",
        ],
    );

    // With the export's manifest beside them, the config's digest gives it away.
    let model = device_copy(&scratch("other-config-golden"), "fundus-disc-cup", true);
    std::fs::copy(
        shipped("wbc").join("config.json"),
        model.join("config.json"),
    )
    .unwrap();
    all_refuse(&dir, &model, &["config.json", "sha256", "another export"]);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(scratch("other-config-golden")).unwrap();
}

#[test]
fn a_wrong_input_size_or_class_count_is_refused() {
    let dir = scratch("input-size");
    let model = device_copy(&dir, "wbc", false);
    edit_json(&model.join("config.json"), |c| {
        c["input_size"] = serde_json::json!([1, 64, 64])
    });
    all_refuse(&dir, &model, &["input_size [1, 64, 64]", "[1, 112, 112]"]);

    // A class that the plan does not have: the config's names and count are consistent, the
    // plan disagrees.
    let model = device_copy(&scratch("classes"), "wbc", false);
    edit_json(&model.join("config.json"), |c| {
        c["classes"] = serde_json::json!(4);
        c["class_names"] = serde_json::json!(["background", "cytoplasm", "nucleus", "granule"]);
    });
    all_refuse(
        &dir,
        &model,
        &["3 classes", "4 classes", "different models"],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(scratch("classes")).unwrap();
}

#[test]
fn a_plan_at_another_size_than_the_config_is_accepted_when_its_manifest_records_it() {
    let dir = scratch("shape");
    let model = device_copy(&dir, "wbc", true);
    let m = model.to_str().unwrap();
    let (config, manifest) = (
        model.join("config.json"),
        model.join("golden/manifest.json"),
    );
    // What `msnet export --shape` leaves: config.json keeps the size the model was trained
    // at, while the plan and the manifest (which digests that config) have another.
    edit_json(&config, |c| {
        c["input_size"] = serde_json::json!([1, 64, 64])
    });
    let bytes = std::fs::read(&config).unwrap();
    edit_json(&manifest, |j| {
        let files = j["model_files"].as_array_mut().unwrap();
        let entry = files
            .iter_mut()
            .find(|f| f["file"] == "config.json")
            .unwrap();
        entry["bytes"] = serde_json::json!(bytes.len());
        entry["sha256"] = serde_json::json!(msnet_eval::golden::sha256_hex(&bytes));
    });
    let o = msnet_run(&["verify", "--model", m]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified"), "{}", text(&o));

    // A manifest that records another size than the plan's does not belong to it.
    edit_json(&manifest, |j| {
        j["input_shape"] = serde_json::json!([1, 3, 64, 64])
    });
    let o = msnet_run(&["info", "--model", m]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("manifest.json records [1, 3, 64, 64]"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_and_plan_errors_name_their_file() {
    let dir = scratch("names");
    let model = device_copy(&dir, "wbc", false);
    let m = model.to_str().unwrap();
    // An ONNX file where the plan should be: odd-sized, so not "truncated", but ONNX.
    std::fs::copy(
        shipped("wbc").join("model.onnx"),
        model.join("model.msplan"),
    )
    .unwrap();
    let o = msnet_run(&["info", "--model", m]);
    assert!(!o.status.success());
    let plan = model.join("model.msplan").display().to_string();
    for part in [plan.as_str(), "not an MSNet plan (this looks like ONNX"] {
        assert!(text(&o).contains(part), "`{part}` missing: {}", text(&o));
    }
    // And the NNEF archive.
    std::fs::copy(
        shipped("wbc").join("model.nnef.tgz"),
        model.join("model.msplan"),
    )
    .unwrap();
    let o = msnet_run(&["info", "--model", m]);
    assert!(text(&o).contains("gzip archive"), "{}", text(&o));

    std::fs::copy(
        shipped("wbc").join("model.msplan"),
        model.join("model.msplan"),
    )
    .unwrap();
    edit_json(&model.join("config.json"), |c| {
        c["classes"] = serde_json::json!(4)
    });
    let o = msnet_run(&["info", "--model", m]);
    assert!(!o.status.success());
    let config = model.join("config.json").display().to_string();
    for part in [config.as_str(), "3 class names for 4 classes"] {
        assert!(text(&o).contains(part), "`{part}` missing: {}", text(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_directory_in_the_middle_of_an_export_is_refused() {
    let dir = scratch("journal");
    let model = device_copy(&dir, "wbc", true);
    std::fs::write(
        model.join(".export-journal"),
        ".export-1-0\nmodel.onnx\nmodel.nnef.tgz\nmodel.msplan\ngolden\n",
    )
    .unwrap();
    all_refuse(&dir, &model, &[".export-journal", "msnet export"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_reports_only_the_checks_the_manifest_asks_for() {
    let dir = scratch("argmax-off");
    let model = device_copy(&dir, "wbc", true);
    let m = model.to_str().unwrap();
    let manifest = model.join("golden/manifest.json");
    edit_json(&manifest, |j| {
        j["tolerance"]["argmax_equal"] = Value::Bool(false)
    });
    let o = msnet_run(&["verify", "--model", m]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("argmax equal"), "{}", text(&o));
    assert!(!text(&o).contains("same argmax"), "{}", text(&o));
    assert!(text(&o).contains("argmax not checked"), "{}", text(&o));
    assert!(text(&o).contains("verified"), "{}", text(&o));

    // No cases: nothing was verified, so it must not say so.
    edit_json(&manifest, |j| j["cases"] = serde_json::json!([]));
    let o = msnet_run(&["verify", "--model", m]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("verified"), "{}", text(&o));
    for part in ["manifest.json", "no golden cases"] {
        assert!(text(&o).contains(part), "`{part}` missing: {}", text(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
