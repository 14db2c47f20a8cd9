//! `msnet-run finetune`: a shipped model trained further on images written here (phantoms,
//! masks in `segment`'s coding), into a directory `verify` and `segment` accept, with clear
//! errors for inputs that do not fit.
#![cfg(feature = "finetune")]

mod common;

use std::path::{Path, PathBuf};

use common::{msnet_run, scratch, shipped_model, text};

/// A phantom image and its mask (`segment`'s gray coding) at `h`×`w`, as NAME.png and
/// NAME.mask.png in `dir`.
fn write_pair(dir: &Path, name: &str, seed: u64, [h, w]: [usize; 2]) -> (PathBuf, PathBuf) {
    let sample = msnet_io::phantom::nested_ellipses(seed, 3, [1, h, w], 3);
    let pixels = h * w;
    let rgb: Vec<u8> = (0..pixels)
        .flat_map(|p| (0..3).map(move |c| (c, p)))
        .map(|(c, p)| (sample.image[c * pixels + p] * 255.0) as u8)
        .collect();
    let image = dir.join(format!("{name}.png"));
    image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .unwrap()
        .save(&image)
        .unwrap();
    let grays: Vec<u8> = sample
        .labels
        .iter()
        .map(|&l| msnet_labels::mask_png::gray_of(l, 3))
        .collect();
    let mask = dir.join(format!("{name}.mask.png"));
    image::GrayImage::from_raw(w as u32, h as u32, grays)
        .unwrap()
        .save(&mask)
        .unwrap();
    (image, mask)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `finetune` from the shipped WBC model on `pairs`, with `extra` arguments.
fn finetune(pairs: &[(PathBuf, PathBuf)], out: &Path, extra: &[&str]) -> std::process::Output {
    let base = shipped_model("wbc");
    let mut args = vec!["finetune", "--model", s(&base), "--out", s(out), "--images"];
    args.extend(pairs.iter().map(|(i, _)| s(i)));
    args.push("--masks");
    args.extend(pairs.iter().map(|(_, m)| s(m)));
    args.extend(extra);
    msnet_run(&args)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_fine_tuned_model_verifies_segments_and_records_where_it_came_from() {
    let dir = scratch("finetune");
    // Pairs at another size than the model's 112×112: resized as `segment` resizes.
    let pairs = [
        write_pair(&dir, "a", 1, [120, 100]),
        write_pair(&dir, "b", 2, [120, 100]),
    ];
    let out = dir.join("tuned");
    let o = finetune(
        &pairs,
        &out,
        &["--iterations", "3", "--checkpoint-every", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("iteration 3/3"), "{}", text(&o));

    let config = json(&out.join("config.json"));
    let record = &config["training"];
    assert_eq!(record["dataset"], "finetune");
    assert_eq!(record["iterations"], 3);
    assert_eq!(record["batch_size"], 2);
    assert_eq!(record["train"], serde_json::json!(["a", "b"]));
    assert!(record["base"]["path"].as_str().unwrap().ends_with("wbc"));
    assert_eq!(record["base"]["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(record["base"]["training"]["dataset"], "wbc");
    let base_weights = std::fs::read(shipped_model("wbc").join("model.safetensors")).unwrap();
    let tuned_weights = std::fs::read(out.join("model.safetensors")).unwrap();
    assert_eq!(base_weights.len(), tuned_weights.len());
    assert_ne!(base_weights, tuned_weights, "training moved the weights");

    let manifest = json(&out.join("golden/manifest.json"));
    assert!(
        manifest["reference"]
            .as_str()
            .unwrap()
            .contains("msnet-native"),
        "{manifest}"
    );
    assert!(!out.join("model.onnx").exists(), "ONNX is a host file");
    let o = msnet_run(&["verify", "--model", s(&out), "--threads", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let masks = dir.join("masks");
    let o = msnet_run(&[
        "segment",
        "--model",
        s(&out),
        "--out",
        s(&masks),
        s(&pairs[0].0),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(masks.join("a.mask.png").is_file());

    // A second run into the same directory needs --resume or --force.
    let o = finetune(&pairs, &out, &["--iterations", "3"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--resume"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_fine_tune_ends_with_the_weights_of_an_uninterrupted_one() {
    let dir = scratch("finetune-resume");
    let pairs = [
        write_pair(&dir, "a", 3, [112, 112]),
        write_pair(&dir, "b", 4, [112, 112]),
        write_pair(&dir, "c", 5, [112, 112]),
    ];
    let common = [
        "--checkpoint-every",
        "2",
        "--batch-size",
        "2",
        "--augment",
        "default",
    ];
    let whole = dir.join("whole");
    let o = finetune(
        &pairs,
        &whole,
        &[&["--iterations", "4"][..], &common].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    // The same run stopped after its checkpoint at 2, then continued.
    let split = dir.join("split");
    let o = finetune(
        &pairs,
        &split,
        &[&["--iterations", "2"][..], &common].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = finetune(
        &pairs,
        &split,
        &[&["--iterations", "4", "--resume"][..], &common].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(weights(&whole), weights(&split));
    let o = msnet_run(&["verify", "--model", s(&split)]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inputs_that_do_not_fit_are_refused_naming_the_file() {
    let dir = scratch("finetune-bad");
    let (image, mask) = write_pair(&dir, "a", 1, [64, 64]);
    let (_, small_mask) = write_pair(&dir, "small", 1, [32, 64]);
    let out = dir.join("out");
    let fails = |pairs: &[(PathBuf, PathBuf)], extra: &[&str], needles: &[&str]| {
        let o = finetune(pairs, &out, &[&["--iterations", "1"][..], extra].concat());
        assert!(!o.status.success(), "{}", text(&o));
        let t = text(&o);
        for n in needles {
            assert!(t.contains(n), "`{n}` not in: {t}");
        }
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out.join("model.safetensors").exists());
    };
    // A mask of another size than its image.
    fails(
        &[(image.clone(), small_mask.clone())],
        &[],
        &["small.mask.png", "64×32", "a.png"],
    );
    // A gray value that codes no class (128 is none of 0, 127, 254).
    let odd = dir.join("odd.mask.png");
    image::GrayImage::from_pixel(64, 64, image::Luma([128]))
        .save(&odd)
        .unwrap();
    fails(
        &[(image.clone(), odd.clone())],
        &[],
        &["odd.mask.png", "gray value 128", "--mask-values"],
    );
    // ... which --mask-values can declare; then the batch is larger than the set.
    fails(
        &[(image.clone(), odd)],
        &["--mask-values", "0,128,255", "--batch-size", "2"],
        &["batch size 2", "(1 images)"],
    );
    fails(
        &[(image.clone(), mask.clone())],
        &["--mask-values", "0,255"],
        &["2 values", "3 classes"],
    );
    // Counts that differ.
    let o = msnet_run(&[
        "finetune",
        "--model",
        s(&shipped_model("wbc")),
        "--out",
        s(&out),
        "--iterations",
        "1",
        "--images",
        s(&image),
        s(&image),
        "--masks",
        s(&mask),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("2 images but 1 masks"), "{}", text(&o));
    // The base model's own directory.
    let base = shipped_model("wbc");
    let o = msnet_run(&[
        "finetune",
        "--model",
        s(&base),
        "--out",
        s(&base),
        "--iterations",
        "1",
        "--images",
        s(&image),
        "--masks",
        s(&mask),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is the --model directory"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_3d_model_fine_tunes_on_nifti_volumes_and_verifies() {
    let dir = scratch("finetune-3d");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny-3d");
    // Phantom volumes on another grid than the model's 4×8×8, labels as class indices.
    let shape = [6, 12, 10];
    let mut pairs = Vec::new();
    for seed in 0..2 {
        let p = msnet_io::phantom::nested_ellipses(seed, 1, shape, 2);
        let image = dir.join(format!("v{seed}.nii.gz"));
        let labels = dir.join(format!("v{seed}.labels.nii.gz"));
        msnet_io::write_volume_f32(&image, shape, &p.image).unwrap();
        msnet_io::write_volume_u8(&labels, shape, &p.labels).unwrap();
        pairs.push((image, labels));
    }
    let run = |masks: &[&Path], out: &Path| {
        let mut args = vec![
            "finetune",
            "--model",
            s(&base),
            "--out",
            s(out),
            "--iterations",
            "2",
        ];
        args.push("--images");
        args.extend(pairs.iter().map(|(i, _)| s(i)));
        args.push("--masks");
        args.extend(masks.iter().map(|m| s(m)));
        msnet_run(&args)
    };
    let out = dir.join("tuned");
    let masks: Vec<&Path> = pairs.iter().map(|(_, m)| m.as_path()).collect();
    let o = run(&masks, &out);
    assert!(o.status.success(), "{}", text(&o));
    let record = &json(&out.join("config.json"))["training"];
    assert_eq!(record["train"], serde_json::json!(["v0", "v1"]));
    let o = msnet_run(&["verify", "--model", s(&out)]);
    assert!(o.status.success(), "{}", text(&o));

    // A label volume on another grid than its volume.
    let odd = dir.join("odd.labels.nii.gz");
    msnet_io::write_volume_u8(&odd, [6, 12, 9], &vec![0; 6 * 12 * 9]).unwrap();
    let o = run(&[masks[0], &odd], &dir.join("bad"));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("odd.labels.nii.gz") && text(&o).contains("grid"),
        "{}",
        text(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
