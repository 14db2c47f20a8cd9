//! The `msnet` binary end to end: info, train, eval and export on a generated folder dataset, and the
//! errors a user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use msnet_io::phantom::nested_ellipses;

fn msnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msnet"))
        .args(args)
        .env_remove("MSNET_DATA")
        .output()
        .expect("msnet runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("msnet-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A folder dataset of gray phantoms with masks 0/128/255.
fn write_folder_dataset(root: &Path, n: u64) {
    for dir in ["images", "masks"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for i in 0..n {
        let s = nested_ellipses(i, 1, [1, 40, 40], 3);
        let image: Vec<u8> = s.image.iter().map(|v| (v * 255.0).round() as u8).collect();
        let mask: Vec<u8> = s
            .labels
            .iter()
            .map(|&l| [0u8, 128, 255][l as usize])
            .collect();
        let name = format!("p{i:02}.png");
        msnet_io::write_gray_png(&root.join("images").join(&name), [40, 40], &image).unwrap();
        msnet_io::write_gray_png(&root.join("masks").join(&name), [40, 40], &mask).unwrap();
    }
}

#[test]
fn info_prints_the_papers_parameter_counts() {
    let o = msnet(&[
        "info",
        "--dims",
        "2",
        "--in-channels",
        "3",
        "--classes",
        "3",
    ]);
    assert!(o.status.success());
    assert!(
        text(&o).lines().any(|l| l == "parameters: 111456"),
        "{}",
        text(&o)
    );
    let o = msnet(&[
        "info",
        "--dims",
        "3",
        "--in-channels",
        "1",
        "--classes",
        "4",
    ]);
    assert!(
        text(&o).lines().any(|l| l == "parameters: 333936"),
        "{}",
        text(&o)
    );
}

/// `msnet train` on the folder dataset of [`write_folder_dataset`] (32×32, 3 test images,
/// 3 iterations of batch 2, the default native engine on 2 threads) with `train_size` training images, into `out`,
/// plus `extra`, whose flags replace those defaults.
fn folder_training<'a>(
    data: &'a str,
    train_size: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--dataset",
        "folder",
        "--data",
        data,
        "--classes",
        "0=background,128=ring,255=core",
        "--size",
        "32x32",
        "--train-size",
        train_size,
        "--test-count",
        "3",
        "--out",
        out,
    ];
    for (flag, value) in [
        ("--iterations", "3"),
        ("--batch-size", "2"),
        ("--threads", "2"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    args
}

#[test]
fn train_then_eval_on_a_folder_dataset() {
    let dir = scratch("folder");
    let data = dir.join("data");
    write_folder_dataset(&data, 8);
    let out = dir.join("model");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let o = msnet(&folder_training(data_s, "4", out_s, &[]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("test:"),
        "the split is printed: {}",
        text(&o)
    );
    let o = msnet(&[
        "eval",
        "--model",
        out_s,
        "--data",
        data_s,
        "--json",
        "--overlays",
        dir.join("overlays").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["images"], 3);
    for key in ["mean_all", "mean_foreground"] {
        for m in ["acc", "iou", "dsc", "asd"] {
            assert!(report[key][m].is_number(), "{key}.{m} in {report}");
        }
    }
    assert!(report["classes"]["core"]["dsc"].is_number());
    assert_eq!(std::fs::read_dir(dir.join("overlays")).unwrap().count(), 3);
    // The recorded dataset is the model's; another one's split is refused (any spelling).
    let o = msnet(&[
        "eval",
        "--model",
        out_s,
        "--data",
        data_s,
        "--dataset",
        "WBC",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("trained on folder, not wbc"),
        "{}",
        text(&o)
    );

    // The trained model exports, and the bundle is self-consistent.
    let o = msnet(&["export", out_s]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("model.onnx") && t.contains("tract-nnef"), "{t}");
    let (manifest, cases) = msnet_eval::golden::load(&out).unwrap();
    msnet_eval::golden::check_digests(&out, &manifest).unwrap();
    assert_eq!((manifest.input_shape, cases.len()), (vec![1, 1, 32, 32], 3));
    let o = msnet(&["export", out_s, "--shape", "30x30"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("[1, 30, 30]"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--images` scores named images the model never trained on (and refuses one it did);
/// `--keep-largest-regions` runs for a disc/cup model and is refused for any other.
#[test]
fn eval_scores_named_unseen_images_and_cleans_disc_cup_maps() {
    let dir = scratch("named");
    let data = dir.join("data");
    write_folder_dataset(&data, 8);
    let (data_s, disc_cup, other) = (
        data.to_str().unwrap(),
        dir.join("disc-cup"),
        dir.join("other"),
    );
    for (out, classes) in [
        (&disc_cup, "0=background,128=rim,255=cup"),
        (&other, "0=background,128=ring,255=core"),
    ] {
        let mut args = folder_training(data_s, "4", out.to_str().unwrap(), &[]);
        let at = args.iter().position(|a| *a == "--classes").unwrap() + 1;
        args[at] = classes;
        let o = msnet(&args);
        assert!(o.status.success(), "{}", text(&o));
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(disc_cup.join("config.json")).unwrap()).unwrap();
    let listed = |part: &str| -> Vec<String> {
        serde_json::from_value(config["training"][part].clone()).unwrap()
    };
    let (train, test) = (listed("train"), listed("test"));
    let unused: Vec<String> = (0..8)
        .map(|i| format!("p{i:02}"))
        .filter(|n| !train.contains(n) && !test.contains(n))
        .collect();
    assert_eq!(
        unused.len(),
        1,
        "8 images, 4 trained on, 3 tested: {train:?} {test:?}"
    );
    let eval = |model: &Path, images: &str, extra: &[&str]| {
        let mut args = vec!["eval", "--model", model.to_str().unwrap(), "--data", data_s];
        args.extend(["--json", "--images", images]);
        args.extend_from_slice(extra);
        msnet(&args)
    };
    let both = format!("{},{}", unused[0], test[0]);
    let o = eval(&disc_cup, &both, &["--keep-largest-regions"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["images"], 2);
    assert_eq!(report["keep_largest_regions"], true);
    assert_eq!(report["per_image"][0]["name"], unused[0].as_str());
    let o = eval(&disc_cup, &train[1], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("`{}` is one of", train[1]))
            && text(&o).contains("training images"),
        "{}",
        text(&o)
    );
    let o = eval(&other, &unused[0], &["--keep-largest-regions"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("for optic disc/cup models"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A run stopped at a checkpoint and resumed ends with the same weights, bit for bit, as one
/// that ran straight through; on both engines, and for the native engine at another thread
/// count too (its gradient sums do not depend on the split).
#[test]
fn resumed_runs_equal_uninterrupted_runs_bit_for_bit() {
    let dir = scratch("resume");
    let data = dir.join("data");
    write_folder_dataset(&data, 7);
    let data_s = data.to_str().unwrap();
    for engine in ["native", "burn"] {
        let straight = dir.join(format!("{engine}-straight"));
        let split = dir.join(format!("{engine}-split"));
        let run = |out: &Path, extra: &[&str]| {
            let mut flags = vec!["--engine", engine, "--checkpoint-every", "2"];
            flags.extend_from_slice(extra);
            let o = msnet(&folder_training(data_s, "4", out.to_str().unwrap(), &flags));
            assert!(o.status.success(), "{engine}: {}", text(&o));
        };
        run(&straight, &["--iterations", "4"]);
        run(&split, &["--iterations", "2"]);
        let threads = if engine == "native" { "1" } else { "2" };
        run(
            &split,
            &["--iterations", "4", "--resume", "--threads", threads],
        );
        let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert!(
            weights(&straight) == weights(&split),
            "{engine}: the resumed run's weights differ"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn baseline_writes_its_report_with_or_without_validation() {
    let dir = scratch("baseline");
    let data = dir.join("data");
    write_folder_dataset(&data, 8);
    let out = dir.join("unet");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let args = |val: &'static str| {
        folder_training(
            data_s,
            "5",
            out_s,
            &[
                "--arch",
                "unet",
                "--unet-width",
                "4",
                "--val-count",
                val,
                "--val-every",
                "2",
            ],
        )
    };
    let o = msnet(&args("2"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("3 training, 2 validation, 3 test"),
        "{}",
        text(&o)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("baseline.json")).unwrap()).unwrap();
    assert_eq!(report["images"], 3);
    assert_eq!(report["network"]["arch"], "unet");
    assert!(report["network"]["parameters"].as_u64().unwrap() > 0);
    assert_eq!(report["training"]["train"].as_array().unwrap().len(), 3);
    assert!(report["mean_all"]["dsc"].is_number());
    // Scored at iterations 2 and 3 (the last), after the header.
    let log = std::fs::read_to_string(out.join("validation.csv")).unwrap();
    let iterations: Vec<&str> = log.lines().skip(1).map(|l| &l[..1]).collect();
    assert_eq!(iterations, ["2", "3"], "{log}");
    // No model: the baseline is never exported.
    assert!(!out.join("config.json").exists());

    let o = msnet(&args("5"));
    assert!(!o.status.success());
    assert!(text(&o).contains("--val-count 5"), "{}", text(&o));

    // Without validation nothing else creates the output folder before the report.
    let plain = dir.join("unet-plain");
    let o = msnet(&folder_training(
        data_s,
        "5",
        plain.to_str().unwrap(),
        &["--arch", "unet", "--unet-width", "4"],
    ));
    assert!(o.status.success(), "{}", text(&o));
    assert!(plain.join("baseline.json").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_help_explains_both_engines_and_unknown_engines_are_rejected() {
    let o = msnet(&["train", "--help"]);
    assert!(o.status.success());
    let help = text(&o);
    for word in [
        "--engine",
        "native",
        "burn",
        "--threads",
        "RAYON_NUM_THREADS",
        "--force",
    ] {
        assert!(help.contains(word), "{word} in {help}");
    }
    let o = msnet(&["train", "--engine", "tract", "--out", "/tmp/x"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("tract") && t.contains("native, burn"), "{t}");
}

#[test]
fn help_lists_each_dataset_and_network_and_other_values_are_refused() {
    // clap aligns the descriptions and wraps them: compare with the spacing collapsed.
    let help = text(&msnet(&["train", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for value in [
        "wbc: WBC Dataset 1",
        "drishti: Drishti-GS1 optic-disc crops",
        "drishti-full: Drishti-GS1 whole photographs",
        "acdc: ACDC cardiac",
        "folder: your own images/",
        "msnet: MSNet",
        "unet: the paper's U-Net baseline",
    ] {
        assert!(help.contains(value), "{value} in {help}");
    }
    // Dataset names are read in any case, as before.
    let o = msnet(&[
        "train",
        "--dataset",
        "Drishti-Full",
        "--data",
        "/nonexistent/msnet-data",
        "--out",
        "/tmp/x",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("/nonexistent/msnet-data/drishti_gs1/full"),
        "{}",
        text(&o)
    );
    for (flag, value, offered) in [
        (
            "--dataset",
            "mnist",
            "wbc, drishti, drishti-full, acdc, folder",
        ),
        ("--arch", "resnet", "msnet, unet"),
    ] {
        let o = msnet(&["train", flag, value, "--out", "/tmp/x"]);
        assert!(!o.status.success());
        let t = text(&o);
        assert!(t.contains(value) && t.contains(offered), "{t}");
    }
}

/// An OUT that holds a run is refused without --resume or --force; a resume checks the
/// engine, and finds the checkpoint a crash between the swap's renames left in
/// `checkpoint.new/` (the split check used to read only `checkpoint/`).
#[test]
fn reusing_an_out_needs_resume_or_force_and_resume_survives_a_mid_swap_crash() {
    let dir = scratch("reuse");
    let data = dir.join("data");
    write_folder_dataset(&data, 7);
    let out = dir.join("model");
    let (data_s, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let train = |extra: &[&str]| msnet(&folder_training(data_s, "4", out_s, extra));
    let o = train(&[]);
    assert!(o.status.success(), "{}", text(&o));

    let o = train(&[]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("already holds") && t.contains("--resume") && t.contains("--force"),
        "{t}"
    );
    assert!(!t.contains("loading"), "refused before loading data: {t}");
    let o = train(&["--resume", "--force"]);
    assert!(!o.status.success(), "{}", text(&o));

    let o = train(&["--resume", "--iterations", "4", "--engine", "burn"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("written by the native engine; resume with --engine native"),
        "{t}"
    );

    // The crash: `checkpoint/` (iteration 3) renamed to `.new`, an older `.old` (iteration 1)
    // beside it, no `checkpoint/`.
    let ck = out.join("checkpoint");
    let (new, old) = (out.join("checkpoint.new"), out.join("checkpoint.old"));
    std::fs::create_dir_all(&old).unwrap();
    for e in std::fs::read_dir(&ck).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), old.join(e.file_name())).unwrap();
    }
    let state = std::fs::read_to_string(old.join("state.json")).unwrap();
    assert!(state.contains("\"iteration\": 3"), "{state}");
    std::fs::write(
        old.join("state.json"),
        state.replace("\"iteration\": 3", "\"iteration\": 1"),
    )
    .unwrap();
    std::fs::rename(&ck, &new).unwrap();
    let o = train(&["--resume", "--iterations", "4"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("iteration 4/4") && !t.contains("iteration 2/4"),
        "resumed from .new (3), not .old (1): {t}"
    );
    assert!(ck.is_dir() && !new.exists() && !old.exists());
    let state = std::fs::read_to_string(ck.join("state.json")).unwrap();
    assert!(state.contains("\"iteration\": 4"), "{state}");

    // --force starts afresh.
    let o = train(&["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["training"]["iterations"], 3, "{config}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_data_names_the_path_and_msnet_data() {
    let o = msnet(&[
        "train",
        "--dataset",
        "wbc",
        "--data",
        "/nonexistent/msnet-data",
        "--out",
        "/tmp/x",
    ]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("/nonexistent/msnet-data") && t.contains("MSNET_DATA"),
        "{t}"
    );
}

#[test]
fn eval_of_a_corrupt_model_names_the_file() {
    let dir = scratch("corrupt");
    let cfg = msnet::Config::new(2, 1, 2);
    cfg.save(&dir.join("config.json")).unwrap();
    std::fs::write(dir.join("model.safetensors"), b"not a model").unwrap();
    let o = msnet(&["eval", "--model", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("model.safetensors"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn probe_reports_each_phase_softmax_and_layer_on_real_samples() {
    let root = scratch("probe");
    write_folder_dataset(&root, 8);
    let data = root.to_str().unwrap();
    let common = [
        "probe",
        "--dataset",
        "folder",
        "--data",
        data,
        "--classes",
        "0=background,128=ring,255=core",
        "--size",
        "32x32",
        "--train-size",
        "3",
        "--test-count",
        "3",
    ];
    let o = msnet(&[&common[..], &["--samples", "2", "--out-gain", "1"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per probed sample");
    for line in &lines {
        // The paper's network at 5 grids: 10 live phase softmaxes and 50 layers.
        assert_eq!(line["phases"].as_array().unwrap().len(), 10, "{line}");
        assert_eq!(line["layers"].as_array().unwrap().len(), 50, "{line}");
        let sum = |k: &str| -> f64 {
            line[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .sum()
        };
        assert!((sum("class_means") - 1.0).abs() < 1e-4, "{line}");
        assert!((sum("class_shares") - 1.0).abs() < 1e-9, "{line}");
        // A small output head starts from a nearly uniform prediction.
        for m in line["class_means"].as_array().unwrap() {
            assert!((m.as_f64().unwrap() - 1.0 / 3.0).abs() < 0.1, "{line}");
        }
        assert!(line["layers"][0]["gradient_rms"].as_f64().unwrap() > 0.0);
    }
    let o = msnet(&[&common[..], &["--samples", "4"]].concat());
    assert!(!o.status.success());
    assert!(text(&o).contains("--samples 4"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&root);
}
