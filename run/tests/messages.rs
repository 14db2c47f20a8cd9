//! The messages a device user reads (issue 15, item 15): each cause printed once, the file it
//! concerns named, and the problem said as it is, not as the first check it trips.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{msnet_run, scratch, shipped, text};

/// A copy of the shipped model's config and plan in `dir/model`, its config edited.
fn edited_model(dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(Path::new(&shipped()).join(f), model.join(f)).unwrap();
    }
    let cfg = model.join("config.json");
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    edit(&mut json);
    std::fs::write(&cfg, json.to_string()).unwrap();
    model
}

/// stderr of a failed `msnet-run` run.
fn refused(args: &[&str]) -> String {
    let o = msnet_run(args);
    assert!(!o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_missing_model_or_image_is_said_once() {
    let dir = scratch("missing");
    let absent = dir.join("absent");
    let m = absent.to_str().unwrap();
    let config = absent.join("config.json");
    let once = format!(
        "error: {}: cannot read: No such file or directory (os error 2)\n",
        config.display()
    );
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    for args in [
        vec!["verify", "--model", m],
        vec!["segment", "--model", m, "--out", out, "x.png"],
        vec!["info", "--model", m],
        vec!["bench", "--model", m],
    ] {
        assert_eq!(refused(&args), once, "{args:?}");
    }
    let image = dir.join("missing.png");
    let e = refused(&[
        "segment",
        "--model",
        &shipped(),
        "--out",
        out,
        image.to_str().unwrap(),
    ]);
    assert_eq!(
        e.matches("No such file or directory").count(),
        1,
        "the cause once: {e}"
    );
    assert!(
        e.contains(&format!("cannot read {}", image.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_config_with_too_few_class_names_is_named() {
    let dir = scratch("names");
    let model = edited_model(&dir, |j| {
        j["class_names"].as_array_mut().unwrap().pop();
    });
    let e = refused(&["verify", "--model", model.to_str().unwrap()]);
    assert_eq!(
        e,
        format!(
            "error: {}: invalid MSNet config: 2 class names for 3 classes\n",
            model.join("config.json").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn in_channels_edited_to_1_is_said_to_be_the_problem() {
    let dir = scratch("channels");
    let model = edited_model(&dir, |j| j["in_channels"] = 1.into());
    let e = refused(&["verify", "--model", model.to_str().unwrap()]);
    assert_eq!(
        e,
        format!(
            "error: {}: invalid MSNet config: in_channels is 1, but the model was trained on 3 \
             channels (its normalization has statistics for 3): set in_channels back to 3; \
             `msnet-run` converts gray images to RGB and RGB to gray as the model needs\n",
            model.join("config.json").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_single_slice_is_refused_by_a_3d_model_before_its_data_is_read() {
    let dir = scratch("slice");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny-3d");
    let labels = dir.join("labels.nii");
    let one_slice = dir.join("one-slice.nii");
    msnet_io::write_volume_f32(&one_slice, [1, 10, 12], &[0.5; 120]).unwrap();
    // A 2D NIfTI: the same header with dim[0] = 2, and no voxel data at all, so only a check
    // made from the header can answer.
    let two_d = dir.join("two-d.nii");
    let mut header = std::fs::read(&one_slice).unwrap()[..352].to_vec();
    header[40..42].copy_from_slice(&2i16.to_le_bytes());
    std::fs::write(&two_d, &header).unwrap();
    for volume in [&one_slice, &two_d] {
        let e = refused(&[
            "segment-volume",
            "--model",
            model,
            "--out",
            labels.to_str().unwrap(),
            volume.to_str().unwrap(),
        ]);
        assert_eq!(
            e,
            format!(
                "error: {}: a single 12×10 slice, not a volume: a 3D model needs several \
                 slices (segment a 2D slice with a 2D model, `msnet-run segment`)\n",
                volume.display()
            )
        );
    }
    assert!(!labels.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
