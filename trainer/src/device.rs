//! Which burn device runs training and inference.

use burn::tensor::Device;

/// The device for this build: CUDA GPU 0 when built with the `cuda` feature and
/// `MSNET_DEVICE=cuda`, otherwise burn's pure-Rust `flex` CPU backend.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if std::env::var("MSNET_DEVICE").as_deref() == Ok("cuda") {
        return Device::cuda(0);
    }
    Device::flex()
}

/// A short description for logs and model cards.
pub fn describe() -> String {
    #[cfg(feature = "cuda")]
    if std::env::var("MSNET_DEVICE").as_deref() == Ok("cuda") {
        return "burn 0.22.1 cuda (GPU 0)".into();
    }
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
