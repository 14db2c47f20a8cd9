//! The host side of the device engine: what `msnet-run` does around `msnet-runtime`, kept in a
//! library so it can be fuzzed and reused. The command itself lives in `main.rs`.

pub mod locate;
pub mod outputs;
pub mod preprocess;
