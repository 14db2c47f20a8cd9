//! # msnet-fundus-camera: the screening module's device loop
//!
//! A fundus camera sends a disc-centred RGB region over a serial-like link; this crate answers
//! with the optic disc and cup masks (run-length encoded), their areas and the vertical
//! cup-to-disc ratio, using the MSNet runtime. The protocol is in `PROTOCOL.md`.
//!
//! It owns the link protocol ([`protocol`]), the streaming frame decoder ([`decoder`]), the
//! resize of a region to the plan's input ([`preprocess`]), the masks and their measurements
//! ([`masks`], [`rle`]) and the loop that ties them together ([`device`]).
//!
//! It must not touch how plans are made or checked (that is the exporter's and
//! `msnet-runtime`'s business: a plan arrives as bytes and is parsed once, by
//! `msnet_runtime::Plan::parse`), nor depend on burn, tract or `std`. The library is
//! `#![no_std]` without `alloc`: every buffer is the caller's or a `heapless` one of fixed
//! capacity, the link is any `embedded_io` `Read + Write`, and time comes from a [`Clock`]
//! the board provides. Nothing in it panics on bytes from the link.
//!
//! ```text
//! let plan = Plan::parse(&PLAN.0)?;                      // 4-byte aligned plan bytes
//! let buffers = Buffers { receive, input, arena, probabilities, steps };  // steps: [Step::UNSET; N]
//! let mut device = Device::<_, _, 1024>::new(uart, timer, plan, buffers)?;
//! loop { device.poll()?; }
//! ```
#![no_std]

#[cfg(test)]
extern crate std;

pub mod decoder;
pub mod device;
pub mod masks;
pub mod preprocess;
pub mod protocol;
pub mod rle;

pub use device::{Buffers, Clock, Device, Served, SetupError};
