//! Every model in `models/` reproduces its golden bundle: the burn reference (the trainer's
//! forward pass), tract on `model.onnx`, tract-nnef on `model.nnef.tgz` and msnet-runtime on
//! `model.msplan`, each within the
//! manifest's tolerance and with the same argmax; the bundle's sha256 match the files.

use burn::tensor::Device;
use msnet::Model;
use msnet_eval::golden;
use msnet_exporter::{NNEF_FILE, ONNX_FILE, PLAN_FILE, TractModel};
use msnet_regression::{MODEL_CARD, shipped_models};
use msnet_runtime::host::{PlanBuffer, Session};
use msnet_trainer::Predictor;

#[test]
fn every_shipped_model_reproduces_its_golden_bundle() {
    let models = shipped_models();
    assert!(
        !models.is_empty(),
        "models/ holds no model: nothing would be checked"
    );
    for dir in models {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(dir.join(MODEL_CARD).is_file(), "{name}: no {MODEL_CARD}");
        let (manifest, cases) = golden::load(&dir)
            .unwrap_or_else(|e| panic!("{name}: {e} (run `msnet export models/{name}`)"));
        golden::check_digests(&dir, &manifest).unwrap_or_else(|e| panic!("{name}: {e}"));

        let model = Model::load(&dir).unwrap();
        let classes = model.config().classes;
        let spatial = &manifest.input_shape[2..];
        let size = match *spatial {
            [h, w] => [1, h, w],
            [d, h, w] => [d, h, w],
            _ => panic!("{name}: input shape {:?}", manifest.input_shape),
        };
        let burn = Predictor::new(&model, Device::flex());
        let mut onnx = TractModel::from_onnx(&std::fs::read(dir.join(ONNX_FILE)).unwrap()).unwrap();
        let mut nnef = TractModel::from_nnef(&std::fs::read(dir.join(NNEF_FILE)).unwrap()).unwrap();
        let plan = PlanBuffer::from_bytes(&std::fs::read(dir.join(PLAN_FILE)).unwrap());
        let mut runtime = plan
            .plan()
            .map_err(|e| e.to_string())
            .and_then(|p| Session::new(p).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let diffs = golden::check_engines(
            &cases,
            &mut [
                ("burn", &mut golden::AtSize(&burn, size)),
                ("tract-onnx", &mut onnx),
                ("tract-nnef", &mut nnef),
                ("msnet-runtime", &mut runtime),
            ],
            classes,
            manifest.tolerance,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for diff in &diffs {
            for e in &diff.engines {
                let (engine, cmp) = (&e.engine, &e.comparison);
                println!(
                    "{name} {:<9} {engine:<10} max abs diff {:.3e}, worst diff/tolerance {:.3}",
                    diff.case, cmp.max_abs_diff, cmp.worst_ratio
                );
                assert!(cmp.agrees(), "{name} {} {engine}: {cmp:?}", diff.case);
            }
        }
    }
}
