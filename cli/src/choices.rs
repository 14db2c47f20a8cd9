//! The library's enums as command-line values. Each wrapper offers exactly the library's
//! values under the library's own names (`DatasetKind::ALL` and `name`, `Arch::ALL` and
//! `name`), so the command line cannot drift from what the libraries accept; only the
//! one-line help of each value lives here.

use std::sync::LazyLock;

use clap::ValueEnum;
use clap::builder::PossibleValue;
use msnet::config::Arch;
use msnet_datasets::DatasetKind;

/// `--dataset`: one of the datasets `msnet-datasets` loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatasetArg(pub DatasetKind);

impl ValueEnum for DatasetArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<DatasetArg>> =
            LazyLock::new(|| DatasetKind::ALL.map(DatasetArg).to_vec());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            DatasetKind::Wbc => "WBC Dataset 1: white blood cells (background, cytoplasm, nucleus)",
            DatasetKind::Drishti => "Drishti-GS1 optic-disc crops (background, disc rim, cup)",
            DatasetKind::DrishtiFull => {
                "Drishti-GS1 whole photographs, background / disc: a disc locator"
            }
            DatasetKind::Acdc => "ACDC cardiac cine-MRI volumes (3D)",
            DatasetKind::Folder => "your own images/ + masks/, classes from --classes",
        };
        Some(PossibleValue::new(self.0.name()).help(help))
    }
}

/// `--arch`: which network `msnet train` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchArg(pub Arch);

impl ValueEnum for ArchArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<ArchArg>> = LazyLock::new(|| Arch::ALL.map(ArchArg).to_vec());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            Arch::MSNet => "MSNet (the single-grid ablation is --grids 1)",
            Arch::UNet => {
                "the paper's U-Net baseline, narrowed by --unet-width: 2D, trained with burn; \
                 writes OUT/baseline.json with its test metrics, and no model"
            }
        };
        Some(PossibleValue::new(self.0.name()).help(help))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_value_is_offered_under_its_library_name() {
        let names = |values: Vec<Option<PossibleValue>>| -> Vec<String> {
            values
                .into_iter()
                .map(|v| v.unwrap().get_name().to_string())
                .collect()
        };
        let datasets = DatasetArg::value_variants()
            .iter()
            .map(ValueEnum::to_possible_value)
            .collect();
        assert_eq!(
            names(datasets),
            ["wbc", "drishti", "drishti-full", "acdc", "folder"]
        );
        let archs = ArchArg::value_variants()
            .iter()
            .map(ValueEnum::to_possible_value)
            .collect();
        assert_eq!(names(archs), ["msnet", "unet"]);
        for (name, kind) in [
            ("drishti-full", DatasetKind::DrishtiFull),
            ("DRISHTI-FULL", DatasetKind::DrishtiFull),
            ("Acdc", DatasetKind::Acdc),
        ] {
            assert_eq!(DatasetArg::from_str(name, true), Ok(DatasetArg(kind)));
        }
        assert!(DatasetArg::from_str("mnist", true).is_err());
        assert!(ArchArg::from_str("UNet", false).is_err());
        assert_eq!(ArchArg::from_str("unet", false), Ok(ArchArg(Arch::UNet)));
    }
}
