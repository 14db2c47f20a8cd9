//! Which burn device runs training and inference.
//!
//! Only burn's pure-Rust `flex` CPU backend is built. burn 0.22's `cuda` feature pulls in
//! cubecl's LLVM bundler, whose build script downloads an LLVM archive; that cannot build on
//! machines without general internet access (this project's CI among them), so no GPU backend
//! is offered until it can be built and tested here.

use burn::tensor::Device;

/// The device for training and inference: burn's `flex` CPU backend.
pub fn device() -> Device {
    Device::flex()
}

/// A short description for logs and model cards.
pub fn describe() -> String {
    // burn's flex backend runs on rayon's global pool, which honours RAYON_NUM_THREADS.
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    format!(
        "burn 0.22.1 flex CPU backend, {threads} threads, {}",
        std::env::consts::ARCH
    )
}
