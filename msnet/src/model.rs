//! A model directory: `config.json` + `model.safetensors`, read and written as a unit.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::fsutil;
use crate::spec::Spec;
use crate::weights::{Weights, WeightsError};

/// File names inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A loaded model: validated config, its layer list and matching weights.
#[derive(Clone, Debug)]
pub struct Model {
    pub spec: Spec,
    pub weights: Weights,
}

/// Why a model directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Fs(#[from] fsutil::FsError),
    #[error("{path}: not a model directory (no {CONFIG_FILE})")]
    NotAModel { path: PathBuf },
}

impl Model {
    /// Reads a model directory, checking the weights against the config.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(ModelError::NotAModel {
                path: dir.to_path_buf(),
            });
        }
        let config = Config::load(&config_path)?;
        let spec = Spec::new(&config);
        let weights = Weights::load(&spec, &dir.join(WEIGHTS_FILE))?;
        Ok(Self { spec, weights })
    }

    /// Writes both files, each atomically; the weights first, so a config never points at
    /// weights that are not there yet.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        fsutil::create_dir_all(dir)?;
        self.weights.save(&self.spec, &dir.join(WEIGHTS_FILE))?;
        self.spec.config.save(&dir.join(CONFIG_FILE))?;
        Ok(())
    }

    pub fn config(&self) -> &Config {
        &self.spec.config
    }
}
