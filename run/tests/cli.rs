//! `msnet-run` end to end on the shipped model: verify, bench, segment, and the errors a
//! device user sees.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{msnet_run, scratch, segment, shipped, shipped_model, text};

#[test]
fn verify_passes_on_the_shipped_model_at_one_and_two_threads() {
    for threads in ["1", "2"] {
        let o = msnet_run(&["verify", "--model", &shipped(), "--threads", threads]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("verified"));
        assert!(
            text(&o).contains(&format!("{threads} thread(s)")),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn bench_reports_zero_allocations_per_frame_with_two_threads() {
    let o = msnet_run(&[
        "bench",
        "--model",
        &shipped(),
        "--threads",
        "2",
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
    assert_eq!(report["threads"], 2);
    assert!(report["conv_kernel"].is_string(), "{report}");
}

/// `bench --json` of one frame on the shipped model with `extra` options; must succeed.
fn bench_one_frame(extra: &[&str]) -> serde_json::Value {
    let shipped = shipped();
    let mut args = vec![
        "bench", "--model", &shipped, "--runs", "1", "--warmup", "0", "--json",
    ];
    args.extend_from_slice(extra);
    let o = msnet_run(&args);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn kernel_flag_runs_the_named_kernel_and_refuses_one_this_cpu_lacks() {
    // Portable, direct and Winograd, runs everywhere; verify's golden tolerances hold on it too.
    for kernel in ["portable", "portable-winograd"] {
        let o = msnet_run(&["verify", "--model", &shipped(), "--kernel", kernel]);
        assert!(o.status.success(), "{}", text(&o));
        let named = format!("conv kernel {kernel},");
        assert!(text(&o).contains(&named), "{}", text(&o));
        let report = bench_one_frame(&["--kernel", kernel]);
        assert_eq!(report["conv_kernel"], kernel, "{report}");
    }
    // A kernel of another architecture: named, and what this CPU runs instead listed.
    let foreign = if cfg!(target_arch = "aarch64") {
        "avx2"
    } else {
        "neon"
    };
    let o = msnet_run(&["bench", "--model", &shipped(), "--kernel", foreign]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!("--kernel {foreign}"))
            && t.contains("cannot run")
            && t.contains("portable"),
        "{t}"
    );
    let o = msnet_run(&["bench", "--model", &shipped(), "--kernel", "avx-512"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("no convolution kernel has that name"),
        "{}",
        text(&o)
    );
}

fn write_phantom_png(path: &Path, h: usize, w: usize) {
    let sample = msnet_io::phantom::nested_ellipses(3, 3, [1, h, w], 3);
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
    let o = segment(&out, &[&img, &bad]);
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
    let mask = image::open(out.join("cell.mask.png")).unwrap().to_luma8();
    assert_eq!((mask.width(), mask.height()), (130, 90));
    // A WBC model's images are centre-cropped to 112 wide, as in training: the 9 columns a
    // side it never saw come back as background, and what it saw is not all background.
    for y in 0..90 {
        for x in (0..9).chain(121..130) {
            assert_eq!(mask.get_pixel(x, y).0[0], 0, "({x}, {y})");
        }
    }
    assert!(mask.pixels().any(|p| p.0[0] > 0));
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

/// The shipped model relabelled as a disc/cup model (class 2 plays the cup), in a scratch copy.
fn disc_cup_model(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(Path::new(&shipped()).join(f), model.join(f)).unwrap();
    }
    let cfg = model.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    json["class_names"] = serde_json::json!(["background", "rim", "cup"]);
    std::fs::write(&cfg, json.to_string()).unwrap();
    model
}

#[test]
fn watch_once_logs_a_csv_row_per_image_and_files_them_away() {
    let dir = scratch("watch");
    let model = disc_cup_model(&dir);
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    write_phantom_png(&inbox.join("eye-1.png"), 100, 120);
    write_phantom_png(&inbox.join("eye-2.png"), 64, 64);
    std::fs::write(inbox.join("eye-3.png"), b"not a png").unwrap();
    std::fs::write(inbox.join(".eye-4.png"), b"still being copied").unwrap();
    std::fs::write(inbox.join("notes.txt"), b"ignored").unwrap();
    let out = dir.join("out");
    let args = [
        "watch",
        "--model",
        model.to_str().unwrap(),
        "--inbox",
        inbox.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "2",
        "--once",
    ];
    let o = msnet_run(&args);
    assert!(!o.status.success(), "eye-3.png is broken: {}", text(&o));
    assert!(text(&o).contains("eye-3.png"), "{}", text(&o));

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "file",
            "width",
            "height",
            "latency_ms",
            "vertical_cdr",
            "disc_px",
            "cup_px",
            "background_px",
            "rim_px",
            "cup_px"
        ]
    );
    assert_eq!(rows.len(), 3, "{csv}");
    for (row, (w, h)) in rows[1..].iter().zip([(120, 100), (64, 64)]) {
        assert_eq!(
            (row[1], row[2]),
            (w.to_string().as_str(), h.to_string().as_str())
        );
        let areas: Vec<u64> = row[7..].iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(areas.iter().sum::<u64>(), (w * h) as u64);
        // disc = rim ∪ cup; cup = class 2.
        assert_eq!(row[5].parse::<u64>().unwrap(), areas[1] + areas[2]);
        assert_eq!(row[6].parse::<u64>().unwrap(), areas[2]);
        if areas[1] + areas[2] > 0 {
            let cdr: f64 = row[4].parse().unwrap();
            assert!((0.0..=1.0).contains(&cdr), "{cdr}");
        }
    }
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&out.join("done")), ["eye-1.png", "eye-2.png"]);
    assert_eq!(names(&out.join("failed")), ["eye-3.png"]);
    assert_eq!(
        names(&inbox),
        [
            ".eye-4.png",
            ".msnet-watch.lock",
            ".processing",
            "notes.txt"
        ]
    );

    // A second run finds nothing new and appends nothing.
    let o = msnet_run(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("results.csv")).unwrap(),
        csv
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_on_a_device_copy_needs_only_config_plan_and_golden() {
    let dir = scratch("device-copy");
    let model = dir.join("model");
    std::fs::create_dir_all(model.join("golden")).unwrap();
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(Path::new(&shipped()).join(f), model.join(f)).unwrap();
    }
    for e in std::fs::read_dir(Path::new(&shipped()).join("golden")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join("golden").join(e.file_name())).unwrap();
    }
    let m = model.to_str().unwrap();
    let o = msnet_run(&["verify", "--model", m]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not on this device"), "{}", text(&o));
    // The plan itself is still checked against the manifest.
    let mut plan = std::fs::read(model.join("model.msplan")).unwrap();
    let n = plan.len();
    plan[n - 1] ^= 1;
    std::fs::write(model.join("model.msplan"), plan).unwrap();
    let o = msnet_run(&["verify", "--model", m]);
    assert!(!o.status.success());
    assert!(text(&o).contains("model.msplan"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tiny random-weight 3D model (scripts/tiny_model.py): 4×8×8 input, 2 classes.
fn tiny_3d() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny-3d").into()
}

#[test]
fn segment_volume_writes_labels_on_the_volumes_grid_within_a_budget() {
    let dir = scratch("volume");
    let vol = dir.join("scan.nii.gz");
    let shape = [6, 10, 12];
    let voxels: Vec<f32> = (0..6 * 10 * 12)
        .map(|i| 100.0 + ((i % 12) as f32 - 6.0).abs() * 20.0 + (i / 120) as f32)
        .collect();
    msnet_io::write_volume_f32(&vol, shape, &voxels).unwrap();
    let labels = dir.join("labels.nii.gz");
    let args = |budget: &str| {
        let mut v = vec![
            "segment-volume".to_string(),
            "--model".into(),
            tiny_3d(),
            "--out".into(),
            labels.to_str().unwrap().into(),
            vol.to_str().unwrap().into(),
        ];
        if !budget.is_empty() {
            v.extend(["--max-memory-mib".into(), budget.into()]);
        }
        v
    };
    let o = Command::new(env!("CARGO_BIN_EXE_msnet-run"))
        .args(args("16"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["shape_dhw"], serde_json::json!(shape));
    assert!(line["arena_bytes"].as_u64().unwrap() > 0);
    assert!(line["total_bytes"].as_u64().unwrap() > line["arena_bytes"].as_u64().unwrap());
    let (got_shape, got) = msnet_io::read_volume_u8(&labels).unwrap();
    assert_eq!(got_shape, shape);
    assert!(got.iter().all(|&l| l < 2));
    let counted: u64 = ["background", "object"]
        .iter()
        .map(|c| line["voxels"][c].as_u64().unwrap())
        .sum();
    assert_eq!(counted, got.len() as u64);

    // A budget too small is refused before anything runs, and says what it needs.
    let o = Command::new(env!("CARGO_BIN_EXE_msnet-run"))
        .args(args("0.01"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("over the budget"), "{}", text(&o));
    // A 2D model is not a volume model.
    let o = msnet_run(&[
        "segment-volume",
        "--model",
        &shipped(),
        "--out",
        labels.to_str().unwrap(),
        vol.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("3D model"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_passes_on_a_3d_model() {
    let o = msnet_run(&["verify", "--model", &tiny_3d(), "--threads", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("verified"));
}

#[cfg(feature = "tract")]
#[test]
fn verify_with_tract_cross_checks_the_runtime_with_a_second_engine() {
    let o = msnet_run(&["verify", "--model", &shipped(), "--tract"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    // Three cases × (runtime vs reference, tract vs reference, runtime vs tract).
    assert_eq!(out.matches("tract-nnef").count(), 3, "{out}");
    assert_eq!(out.matches("runtime/tract").count(), 3, "{out}");
    // A device copy without the NNEF file says what is missing.
    let dir = scratch("no-nnef");
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(Path::new(&shipped()).join(f), dir.join(f)).unwrap();
    }
    std::fs::create_dir_all(dir.join("golden")).unwrap();
    for e in std::fs::read_dir(Path::new(&shipped()).join("golden")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join("golden").join(e.file_name())).unwrap();
    }
    let o = msnet_run(&["verify", "--model", dir.to_str().unwrap(), "--tract"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("model.nnef.tgz"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn segment_volume_never_writes_over_its_input_or_its_model() {
    let dir = scratch("volume-input");
    let scan = dir.join("scan.nii.gz");
    let voxels: Vec<f32> = (0..6 * 10 * 12).map(|i| i as f32).collect();
    msnet_io::write_volume_f32(&scan, [6, 10, 12], &voxels).unwrap();
    let link = dir.join("link.nii.gz");
    std::os::unix::fs::symlink(&scan, &link).unwrap();
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["config.json", "model.msplan"] {
        std::fs::copy(Path::new(&tiny_3d()).join(f), model.join(f)).unwrap();
    }
    let before = std::fs::read(&scan).unwrap();
    let plan = std::fs::read(model.join("model.msplan")).unwrap();
    let plan_path = model.join("model.msplan");
    for (out, input) in [
        (&scan, &scan),
        (&scan, &link),
        (&link, &scan),
        (&plan_path, &scan),
    ] {
        let o = msnet_run(&[
            "segment-volume",
            "--model",
            s(&model),
            "--out",
            s(out),
            s(input),
        ]);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("would overwrite the input"),
            "{}",
            text(&o)
        );
        assert!(text(&o).contains(s(out)), "{}", text(&o));
    }
    assert_eq!(std::fs::read(&scan).unwrap(), before);
    assert_eq!(std::fs::read(&plan_path).unwrap(), plan);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_never_writes_a_mask_over_an_input_image() {
    let dir = scratch("segment-input");
    let cell = dir.join("cell.png");
    write_phantom_png(&cell, 40, 50);
    // An image that happens to carry the name cell.png's mask gets.
    let named_like_a_mask = dir.join("cell.mask.png");
    write_phantom_png(&named_like_a_mask, 30, 30);
    let before = std::fs::read(&named_like_a_mask).unwrap();
    let o = msnet_run(&[
        "segment",
        "--model",
        &shipped(),
        "--out",
        s(&dir),
        s(&cell),
        s(&named_like_a_mask),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("would overwrite the input"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&named_like_a_mask).unwrap(), before);
    assert_eq!(
        names(&dir),
        ["cell.mask.png", "cell.png"],
        "nothing written"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_refuses_images_sharing_a_stem_and_keeps_earlier_results_without_force() {
    let dir = scratch("segment-collide");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        write_phantom_png(&dir.join(sub).join("x.png"), 40, 50);
    }
    write_phantom_png(&dir.join("a/x.jpg"), 40, 50);
    let out = dir.join("out");
    let segment = |images: &[&Path], force: bool| {
        let mut args = vec!["segment", "--model", &shipped(), "--out", s(&out)]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if force {
            args.push("--force".into());
        }
        args.extend(images.iter().map(|p| s(p).to_string()));
        Command::new(env!("CARGO_BIN_EXE_msnet-run"))
            .args(args)
            .output()
            .unwrap()
    };
    let (ax, bx, aj) = (
        dir.join("a/x.png"),
        dir.join("b/x.png"),
        dir.join("a/x.jpg"),
    );
    for pair in [[&ax, &bx], [&ax, &aj]] {
        let o = segment(&[pair[0], pair[1]], false);
        assert!(!o.status.success(), "{}", text(&o));
        let msg = text(&o);
        assert!(
            msg.contains(&format!("{} and {}", s(pair[0]), s(pair[1]))),
            "{msg}"
        );
        assert!(!out.exists(), "nothing may be written: {msg}");
    }
    let o = segment(&[&ax], false);
    assert!(o.status.success(), "{}", text(&o));
    let first = std::fs::read(out.join("x.mask.png")).unwrap();
    // b/x.png's mask would replace a/x.png's from the run before.
    let o = segment(&[&bx], false);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("already exists") && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(out.join("x.mask.png")).unwrap(), first);
    let o = segment(&[&bx], true);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn watch_once(model: &Path, inbox: &Path, out: &Path) -> Output {
    msnet_run(&[
        "watch",
        "--model",
        s(model),
        "--inbox",
        s(inbox),
        "--out",
        s(out),
        "--once",
    ])
}

#[test]
fn watch_never_replaces_a_filed_image_or_its_results() {
    let dir = scratch("watch-collide");
    let inbox = dir.join("inbox");
    let out = dir.join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    let model = Path::new(&shipped()).to_path_buf();
    write_phantom_png(&inbox.join("scan.png"), 100, 120);
    std::fs::write(inbox.join("bad.png"), b"not a png").unwrap();
    let first = std::fs::read(inbox.join("scan.png")).unwrap();
    let o = watch_once(&model, &inbox, &out);
    assert!(!o.status.success(), "bad.png fails: {}", text(&o));

    write_phantom_png(&inbox.join("scan.png"), 64, 64);
    write_phantom_png(&inbox.join("scan.jpg"), 32, 48);
    std::fs::write(inbox.join("bad.png"), b"not a png either").unwrap();
    let second = std::fs::read(inbox.join("scan.png")).unwrap();
    let o = watch_once(&model, &inbox, &out);
    assert!(!o.status.success(), "bad.png fails: {}", text(&o));
    assert!(
        text(&o).contains("scan-1"),
        "the new name is said: {}",
        text(&o)
    );

    // Pending images go by name: bad.png, scan.jpg, then scan.png.
    assert_eq!(
        names(&out.join("done")),
        ["scan-1.jpg", "scan-2.png", "scan.png"]
    );
    assert_eq!(std::fs::read(out.join("done/scan.png")).unwrap(), first);
    assert_eq!(std::fs::read(out.join("done/scan-2.png")).unwrap(), second);
    assert_eq!(names(&out.join("failed")), ["bad-1.png", "bad.png"]);
    assert_eq!(
        std::fs::read(out.join("failed/bad.png")).unwrap(),
        b"not a png"
    );
    for (stem, (w, h)) in [
        ("scan", (120, 100)),
        ("scan-1", (48, 32)),
        ("scan-2", (64, 64)),
    ] {
        let mask = image::open(out.join(format!("{stem}.mask.png"))).unwrap();
        assert_eq!((mask.width(), mask.height()), (w, h), "{stem}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn watch_refuses_an_inbox_and_out_that_overlap() {
    let dir = scratch("watch-overlap");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    write_phantom_png(&inbox.join("scan.png"), 40, 40);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&inbox, &link).unwrap();
    let model = Path::new(&shipped()).to_path_buf();
    for (watched, out) in [
        (inbox.clone(), inbox.clone()),
        (inbox.clone(), link.clone()),
        (inbox.clone(), inbox.join("out")),
        (inbox.join("done"), inbox.clone()),
    ] {
        std::fs::create_dir_all(&watched).unwrap();
        let o = watch_once(&model, &watched, &out);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("use separate folders"), "{}", text(&o));
        assert!(inbox.join("scan.png").is_file(), "{}", text(&o));
    }
    assert_eq!(names(&inbox), ["done", "scan.png"], "nothing written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_watcher_on_one_inbox_refuses_to_start() {
    use std::io::BufRead;
    let dir = scratch("watch-two");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let model = Path::new(&shipped()).to_path_buf();
    let mut first = Command::new(env!("CARGO_BIN_EXE_msnet-run"))
        .args(["watch", "--model", s(&model), "--inbox", s(&inbox)])
        .args(["--out", s(&dir.join("out-1")), "--poll-ms", "50"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    log.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching"), "{line}");

    let o = watch_once(&model, &inbox, &dir.join("out-2"));
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("another watcher"), "{}", text(&o));
    // The lock goes with the process.
    let o = watch_once(&model, &inbox, &dir.join("out-2"));
    assert!(o.status.success(), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn watch_sets_aside_an_image_a_stopped_watcher_left_claimed() {
    let dir = scratch("watch-claimed");
    let inbox = dir.join("inbox");
    let out = dir.join("out");
    // What a watcher killed in the middle of scan.png leaves behind.
    std::fs::create_dir_all(inbox.join(".processing")).unwrap();
    write_phantom_png(&inbox.join(".processing/scan.png"), 40, 40);
    write_phantom_png(&inbox.join("next.png"), 40, 40);
    let o = watch_once(Path::new(&shipped()), &inbox, &out);
    assert!(!o.status.success(), "a set-aside image counts as failed");
    assert!(text(&o).contains("was being processed"), "{}", text(&o));
    assert_eq!(names(&out.join("failed")), ["scan.png"]);
    assert_eq!(names(&out.join("done")), ["next.png"]);
    assert!(names(&inbox.join(".processing")).is_empty());
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "one header, one row: {csv}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_absurd_thread_count_is_a_clear_error_not_a_panic() {
    let o = msnet_run(&["bench", "--model", &shipped(), "--threads", "100000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("100000 threads") && t.contains("at most"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn a_whole_photograph_is_segmented_in_the_window_around_the_located_disc() {
    let dir = scratch("locator");
    let model = shipped_model("fundus-disc-cup");
    // A synthetic 160×220 photograph: an orange retina lit from the centre inside a circular
    // field of view, black around it, and a pale disc of radius 15 (a Drishti-GS1 disc's share
    // of the height) centred at row 72, column 152, with a little texture.
    let (disc_y, disc_x, disc_radius) = (72.0, 152.0, 15.0);
    let photo = image::RgbImage::from_fn(220, 160, |x, y| {
        let (fx, fy) = (x as f32 + 0.5 - 110.0, y as f32 + 0.5 - 80.0);
        let field = (fx * fx + fy * fy).sqrt() / 132.0;
        let disc = (x as f32 + 0.5 - disc_x).hypot(y as f32 + 0.5 - disc_y) / disc_radius;
        let colour = if disc < 1.0 {
            [240.0, 215.0, 160.0]
        } else if field < 1.0 {
            [200.0, 100.0, 35.0].map(|c| c * (1.0 - 0.5 * field * field))
        } else {
            [0.0; 3]
        };
        let texture = ((x * 7 + y * 13) % 11) as f32 - 5.0;
        image::Rgb(colour.map(|c| (c + texture).clamp(0.0, 255.0) as u8))
    });
    let photo_path = dir.join("eye.png");
    photo.save(&photo_path).unwrap();
    let out = dir.join("out");
    let o = msnet_run(&[
        "segment",
        "--locator",
        shipped_model("fundus-locator").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--window-fraction",
        "0.6",
        "--out",
        out.to_str().unwrap(),
        photo_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let [cy, cx] = [0, 1].map(|i| line["disc_centre_yx"][i].as_f64().unwrap());
    assert!(
        (cy - disc_y as f64).abs() < 3.0 && (cx - disc_x as f64).abs() < 3.0,
        "the locator missed the drawn disc: {line}"
    );
    let w = &line["window"];
    let (top, left, side) = (
        w["top"].as_i64().unwrap(),
        w["left"].as_i64().unwrap(),
        w["side"].as_u64().unwrap() as u32,
    );
    assert_eq!(side, 96, "0.6 of the height");
    assert!(((top + 48) as f64 - cy).abs() <= 1.0 && ((left + 48) as f64 - cx).abs() <= 1.0);

    // The window cut by hand (black outside the photograph) and segmented alone gives the
    // same labels as the pasted-back mask holds there; outside it the mask is background.
    let mut window = image::RgbImage::new(side, side);
    image::imageops::replace(&mut window, &photo, -left, -top);
    let window_path = dir.join("window.png");
    window.save(&window_path).unwrap();
    let alone = dir.join("alone");
    let o = msnet_run(&[
        "segment",
        "--model",
        model.to_str().unwrap(),
        "--out",
        alone.to_str().unwrap(),
        window_path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let window_mask = image::open(alone.join("window.mask.png"))
        .unwrap()
        .to_luma8();
    let mask = image::open(out.join("eye.mask.png")).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (220, 160));
    let mut inside = 0;
    for (x, y, p) in mask.enumerate_pixels() {
        let (wx, wy) = (x as i64 - left, y as i64 - top);
        if (0..side as i64).contains(&wx) && (0..side as i64).contains(&wy) {
            assert_eq!(
                *p,
                *window_mask.get_pixel(wx as u32, wy as u32),
                "({x}, {y})"
            );
            inside += 1;
        } else {
            assert_eq!(p.0[0], 0, "({x}, {y}) is outside the window");
        }
    }
    assert!(inside > 0);
    assert!(
        mask.pixels().any(|p| p.0[0] > 0),
        "the disc/cup model found nothing"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_locator_needs_a_disc_cup_model_behind_it() {
    let dir = scratch("locator-model");
    let photo = dir.join("eye.png");
    write_phantom_png(&photo, 64, 64);
    let o = msnet_run(&[
        "segment",
        "--locator",
        &shipped(),
        "--model",
        &shipped(),
        "--out",
        dir.join("out").to_str().unwrap(),
        photo.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("disc/cup model"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_times_a_golden_input_and_refuses_one_of_another_size() {
    let golden = Path::new(&shipped()).join("golden/noise.input.npy");
    let report = bench_one_frame(&["--input", golden.to_str().unwrap()]);
    assert_eq!(report["input"], golden.display().to_string());
    let other = shipped_model("fundus-disc-cup").join("golden/noise.input.npy");
    let o = msnet_run(&[
        "bench",
        "--model",
        &shipped(),
        "--runs",
        "1",
        "--input",
        other.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("noise.input.npy") && text(&o).contains("the plan takes"),
        "{}",
        text(&o)
    );
}
