//! The fixed-shape tract plan: the exported ONNX graph, loaded by tract-onnx, typed and
//! decluttered, written as NNEF (`graph.nnef` + `.dat` weights) in a gzipped tar.
//!
//! Only the NNEF stdlib and the `tract_core` registry may appear in it, so tract-nnef alone
//! (without tract-onnx or its ONNX operator library) reloads it on a device; the ONNX `Resize`
//! of the prolongation declutters to tract-core's resize. The archive is deterministic: fixed
//! timestamps in the tar and none in the gzip header, so the same model always gives the same
//! bytes (and the same sha256 in the golden manifest).

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::{Framework, InferenceModelExt};

use crate::ExportError;
use crate::onnx::check_structure;
use crate::tract_check::tract_err;

/// Translates ONNX `bytes` (an MSNet export) into a `.nnef.tgz` archive of its decluttered
/// typed model.
pub fn nnef_bytes(onnx: &[u8]) -> Result<Vec<u8>, ExportError> {
    let proto = ModelProto::decode(onnx).map_err(|e| ExportError::Decode(e.to_string()))?;
    check_structure(&proto)?;
    let model = tract_onnx::onnx()
        .model_for_proto_model(&proto)
        .map_err(tract_err("loading the ONNX graph"))?
        .into_typed()
        .map_err(tract_err("typing the ONNX graph"))?
        .into_decluttered()
        .map_err(tract_err("decluttering"))?;
    let gz = GzEncoder::new(Vec::new(), Compression::default());
    tract_nnef::nnef()
        .write_to_tar_with_config(&model, gz, false, true)
        .map_err(tract_err("writing NNEF (an operator outside tract-core?)"))?
        .finish()
        .map_err(|e| ExportError::Tract {
            stage: "compressing NNEF",
            message: e.to_string(),
        })
}
