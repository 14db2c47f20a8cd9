//! # msnet-runtime: MSNet inference without allocation
//!
//! The device engine. It owns the plan format ([`format`]), its validation ([`plan`]), the
//! kernels ([`kernels`]) and their execution in one caller-provided arena ([`engine`]). The
//! core is `#![no_std]` without `alloc`: after the caller has the plan bytes and an arena of
//! [`Plan::arena_len`] floats and storage for [`Plan::len`] decoded steps, [`run`] touches no
//! other memory. Set up once, run many: everything is checked and decoded at load
//! ([`Plan::parse`], [`Plan::prepare`]); a frame only runs the prepared steps.
//!
//! It must not know how plans are made (the exporter compiles the MSNet program into one),
//! nor depend on burn, tract or any file format but its own.
//!
//! ```text
//! let plan = Plan::parse(&bytes)?;               // the file: header, checksum, weights
//! let mut steps = [Step::UNSET; OPS];            // OPS >= plan.len()
//! let program = plan.prepare(&mut steps)?;       // every op decoded and checked, once
//! let mut arena = [0f32; N];                     // N >= plan.arena_len()
//! run(&program, &image, &mut arena, &mut probabilities)?;   // per frame
//! ```
#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod alloc_count;
pub mod crc32;
pub mod denormals;
pub mod engine;
pub mod format;
#[cfg(feature = "std")]
pub mod host;
pub mod kernels;
pub mod parallel;
pub mod plan;
#[cfg(feature = "std")]
pub mod pool;

pub use denormals::{FlushDenormals, with_flushed_denormals};
pub use engine::{RunError, run, run_with};
pub use parallel::{Parallel, Sequential};
pub use plan::{Plan, PlanError, Program, Step};
