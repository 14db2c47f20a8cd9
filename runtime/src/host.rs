//! Host helpers (feature `std`): owning a plan's bytes with the alignment [`crate::Plan`]
//! needs, and running a plan with an arena and threads it sets up once.

use std::vec;
use std::vec::Vec;

use crate::pool::ThreadPool;
use crate::{Plan, PlanError, RunError, run_with};

/// Plan bytes in a `u32` buffer, so they are 4-byte aligned whatever their source.
#[derive(Clone, Debug)]
pub struct PlanBuffer {
    words: Vec<u32>,
    len: usize,
}

impl PlanBuffer {
    /// Copies `bytes` into an aligned buffer (a trailing partial word is kept, so the length
    /// check in [`Plan::parse`] still sees a truncated file as truncated).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
            let mut b = [0u8; 4];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u32::from_le_bytes(b);
        }
        Self {
            words,
            len: bytes.len(),
        }
    }

    /// The plan bytes, 4-byte aligned.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a u32 buffer viewed as its bytes (u8 has no alignment or validity needs);
        // `len` is at most 4 × the word count.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// Parses the plan.
    pub fn plan(&self) -> Result<Plan<'_>, PlanError> {
        Plan::parse(self.bytes())
    }
}

/// A parsed plan with its arena and threads: allocate once, then run any number of frames
/// without allocating.
pub struct Session<'a> {
    plan: Plan<'a>,
    arena: Vec<f32>,
    pool: ThreadPool,
}

impl<'a> Session<'a> {
    /// A one-thread session.
    pub fn new(plan: Plan<'a>) -> Self {
        Self::from_parts(
            plan,
            ThreadPool::new(1).expect("one thread spawns no worker"),
        )
    }

    /// A session that splits each large op across `threads` threads (the caller's included).
    pub fn with_threads(plan: Plan<'a>, threads: usize) -> std::io::Result<Self> {
        Ok(Self::from_parts(plan, ThreadPool::new(threads)?))
    }

    fn from_parts(plan: Plan<'a>, pool: ThreadPool) -> Self {
        Self {
            arena: vec![0.0; plan.arena_len()],
            plan,
            pool,
        }
    }

    /// Threads a frame runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// Runs one frame (see [`crate::run`]).
    pub fn run(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), RunError> {
        run_with(&self.plan, input, &mut self.arena, output, &self.pool)
    }
}

impl std::error::Error for PlanError {}
impl std::error::Error for RunError {}
