//! What the `msnet-run` integration tests share: running the binary, its output, the shipped
//! models, scratch folders.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn msnet_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msnet-run"))
        .args(args)
        .output()
        .unwrap()
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A shipped model directory (`models/NAME`).
pub fn shipped_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(name)
}

/// The shipped model most tests run.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wbc");

pub fn shipped() -> String {
    SHIPPED.into()
}

/// `msnet-run segment` with the shipped model, writing into `out`.
pub fn segment(out: &Path, images: &[&Path]) -> Output {
    let mut args = vec![
        "segment",
        "--model",
        SHIPPED,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(images.iter().map(|i| i.to_str().unwrap()));
    msnet_run(&args)
}

/// An empty folder of its own for test `tag` of this test binary and process.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "msnet-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
