//! The shipped model's plan as a test fixture, and plan surgery helpers.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use msnet_runtime::format::{CHECKSUM_WORD, HEADER_WORDS, OP_WORDS, plan_checksum};
use msnet_runtime::{Plan, Step};

/// The plan of the shipped WBC model (written by `msnet export`).
pub fn shipped_plan() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/wbc/model.msplan");
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sets word `index` and rewrites the checksum, so validation gets past the CRC.
pub fn set_word(bytes: &mut [u8], index: usize, value: u32) {
    bytes[4 * index..4 * index + 4].copy_from_slice(&value.to_le_bytes());
    fix_checksum(bytes);
}

pub fn fix_checksum(bytes: &mut [u8]) {
    let c = plan_checksum(bytes);
    bytes[4 * CHECKSUM_WORD..4 * CHECKSUM_WORD + 4].copy_from_slice(&c.to_le_bytes());
}

/// Word index of field `field` of op `op`.
pub fn op_word(op: usize, field: usize) -> usize {
    HEADER_WORDS + op * OP_WORDS + field
}

/// Storage for `plan`'s decoded steps (what [`Plan::prepare`] fills).
pub fn step_storage(plan: &Plan<'_>) -> Vec<Step> {
    vec![Step::UNSET; plan.len()]
}
