//! Image decoding (PNG, JPEG, BMP, TIFF) and preprocessing to a model input, on arbitrary
//! bytes: what `msnet-run segment` does with a file. It must return an error or an input of
//! the model's size with finite values in [0, 1]; never panic, never allocate without bound
//! (the decoder's limits are checked against the header first).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use msnet_io::fit::InputFit;
use msnet_run::preprocess::decode_model_input;

fuzz_target!(|data: &[u8]| {
    // Gray and RGB models, so both channel conversions run, and both ways of fitting.
    for (want, fit) in [(1, InputFit::Resize), (3, InputFit::CropOrPad)] {
        if let Ok((input, hw)) =
            decode_model_input(Path::new("fuzz-input"), data, want, [16, 16], fit)
        {
            assert_eq!(input.len(), want * 16 * 16);
            assert!(hw[0] > 0 && hw[1] > 0);
            assert!(
                input.iter().all(|v| (0.0..=1.0).contains(v)),
                "preprocessed values outside [0, 1]"
            );
        }
    }
});
