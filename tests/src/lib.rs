//! # msnet-regression: the shipped models against their golden bundles
//!
//! Owns the regression suite over `models/`: every shipped model directory must carry a model
//! card and a golden bundle (`msnet export`), and every engine must reproduce the bundle's
//! outputs within its tolerance. This crate only checks; it must not train, export or change
//! any model (regenerating a bundle is `msnet export`'s job, done on purpose, never by a test).

use std::path::{Path, PathBuf};

/// The model card every shipped model directory carries.
pub const MODEL_CARD: &str = "MODEL_CARD.md";

/// The repository's `models/` folder.
pub fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// Every model directory under [`models_dir`] (a folder holding a `config.json`), sorted.
pub fn shipped_models() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(models_dir()) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(msnet::model::CONFIG_FILE).is_file())
        .collect();
    dirs.sort();
    dirs
}
