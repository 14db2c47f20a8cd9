//! `msnet-run` end to end on the shipped model: verify, bench, segment, and the errors a
//! device user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn msnet_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msnet-run"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shipped() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wbc-s10-seed0").into()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("msnet-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn verify_passes_on_the_shipped_model() {
    let o = msnet_run(&["verify", "--model", &shipped()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified"));
}

#[test]
fn bench_reports_zero_allocations_per_frame() {
    let o = msnet_run(&[
        "bench",
        "--model",
        &shipped(),
        "--runs",
        "2",
        "--warmup",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["allocations_per_frame"], 0.0, "{report}");
    assert!(report["median_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(report["arena_bytes"], 1_605_632 * 4);
}

fn write_phantom_png(path: &Path, h: usize, w: usize) {
    let sample = msnet::phantom::nested_ellipses(3, 3, [1, h, w], 3);
    let pixels = h * w;
    let rgb: Vec<u8> = (0..pixels)
        .flat_map(|p| (0..3).map(move |c| (c, p)))
        .map(|(c, p)| (sample.image[c * pixels + p] * 255.0) as u8)
        .collect();
    image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn segment_writes_masks_at_the_images_own_size() {
    let dir = scratch("segment");
    let img = dir.join("cell.png");
    write_phantom_png(&img, 90, 130);
    let bad = dir.join("broken.png");
    std::fs::write(&bad, &std::fs::read(&img).unwrap()[..100]).unwrap();
    let out = dir.join("out");
    let o = msnet_run(&[
        "segment",
        "--model",
        &shipped(),
        "--out",
        out.to_str().unwrap(),
        img.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "a broken image must fail the run");
    assert!(text(&o).contains("broken.png"), "{}", text(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (line["width"].clone(), line["height"].clone()),
        (130.into(), 90.into())
    );
    let areas = &line["areas_px"];
    let total: u64 = ["background", "cytoplasm", "nucleus"]
        .iter()
        .map(|c| areas[c].as_u64().unwrap())
        .sum();
    assert_eq!(total, 90 * 130);
    let mask = image::open(out.join("cell.mask.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (130, 90));
    assert!(out.join("cell.overlay.png").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_without_a_plan_says_how_to_make_one() {
    let dir = scratch("noplan");
    std::fs::copy(
        Path::new(&shipped()).join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let o = msnet_run(&["verify", "--model", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("msnet export"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
