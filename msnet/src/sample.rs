//! What a network trains on: a [`Sample`] (an image and its labels) and the names of the
//! datasets the project knows ([`DatasetKind`]). A training record names its dataset, and that
//! name fixes how images are brought to the model's input, so the name lives with the network
//! description; reading the datasets is `msnet-datasets`' work.

use std::fmt;
use std::str::FromStr;

/// One labelled example. image: channel-first [C, D, H, W] f32 intensities in [0, 1] (NOT
/// normalised: the network normalises); labels: [D, H, W] class indices. D = 1 for 2D data.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The file stem, e.g. `"001"`, `"drishtiGS_002"`, `"patient001_frame01"`.
    pub name: String,
    /// `C`, the number of image channels.
    pub channels: usize,
    /// `[D, H, W]`.
    pub shape: [usize; 3],
    /// `C·D·H·W` intensities, channel-first.
    pub image: Vec<f32>,
    /// `D·H·W` class indices.
    pub labels: Vec<u8>,
}

/// The datasets the project knows (their loaders are the `msnet-datasets` crate's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// WBC Dataset 1 (Zheng et al. 2018): 300 RGB cell images, 3 classes.
    Wbc,
    /// Drishti-GS1 optic-disc crops: 50 train + 51 test RGB images, 3 classes.
    Drishti,
    /// Drishti-GS1 whole photographs (downsampled ×4), background / disc: what a disc
    /// locator trains on.
    #[serde(rename = "drishti-full")]
    DrishtiFull,
    /// ACDC cardiac cine-MRI subset: 60 volumes of 30 patients, 4 classes.
    Acdc,
    /// A user folder with `images/` and `masks/`, classes given on the command line.
    Folder,
}

impl DatasetKind {
    /// Every kind, in a stable order.
    pub const ALL: [DatasetKind; 5] = [
        DatasetKind::Wbc,
        DatasetKind::Drishti,
        DatasetKind::DrishtiFull,
        DatasetKind::Acdc,
        DatasetKind::Folder,
    ];

    /// The lowercase name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Wbc => "wbc",
            DatasetKind::Drishti => "drishti",
            DatasetKind::DrishtiFull => "drishti-full",
            DatasetKind::Acdc => "acdc",
            DatasetKind::Folder => "folder",
        }
    }

    /// The dataset's folder under the data root; `None` for `folder`, whose root is the path itself.
    pub fn folder_name(self) -> Option<&'static str> {
        match self {
            DatasetKind::Wbc => Some("wbc_dataset1"),
            DatasetKind::Drishti => Some("drishti_gs1"),
            DatasetKind::DrishtiFull => Some("drishti_gs1/full"),
            DatasetKind::Acdc => Some("acdc_subset"),
            DatasetKind::Folder => None,
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = UnknownDataset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDataset {
                name: s.to_string(),
            })
    }
}

/// A dataset name that is not one of [`DatasetKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset '{name}': expected wbc, drishti, drishti-full, acdc or folder")]
pub struct UnknownDataset {
    /// The name as given.
    pub name: String,
}
