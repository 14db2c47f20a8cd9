//! Host helpers (feature `std`): owning a plan's bytes with the alignment [`crate::Plan`]
//! needs, and running a plan with the steps, arena and threads it sets up once.

use std::vec;
use std::vec::Vec;

use crate::kernels::conv::ConvKernel;
use crate::pool::ThreadPool;
use crate::{Plan, PlanError, Program, RunError, Step, run_with};

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

/// A prepared plan with its steps, arena and threads: check, decode and allocate once, then
/// run any number of frames without allocating or decoding.
pub struct Session<'a> {
    plan: Plan<'a>,
    steps: Vec<Step>,
    arena: Vec<f32>,
    pool: ThreadPool,
    conv: ConvKernel,
}

/// Why a session could not be set up.
#[derive(Debug)]
pub enum SessionError {
    /// The plan's ops failed [`Plan::prepare`].
    Plan(PlanError),
    /// The worker threads could not be started.
    Threads {
        threads: usize,
        source: std::io::Error,
    },
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Plan(e) => write!(f, "{e}"),
            Self::Threads { threads, source } => {
                write!(f, "cannot start {threads} threads: {source}")
            }
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Plan(e) => Some(e),
            Self::Threads { source, .. } => Some(source),
        }
    }
}

impl<'a> Session<'a> {
    /// A one-thread session.
    pub fn new(plan: Plan<'a>) -> Result<Self, SessionError> {
        Self::with_threads(plan, 1)
    }

    /// A session that splits each large op across `threads` threads (the caller's included).
    pub fn with_threads(plan: Plan<'a>, threads: usize) -> Result<Self, SessionError> {
        let mut steps = vec![Step::UNSET; plan.len()];
        plan.prepare(&mut steps).map_err(SessionError::Plan)?;
        let pool =
            ThreadPool::new(threads).map_err(|source| SessionError::Threads { threads, source })?;
        Ok(Self {
            arena: vec![0.0; plan.arena_len()],
            plan,
            steps,
            pool,
            conv: ConvKernel::best(),
        })
    }

    /// Threads a frame runs on.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    pub fn plan(&self) -> &Plan<'a> {
        &self.plan
    }

    /// The convolution kernel frames run on: [`ConvKernel::best`] unless set.
    pub fn conv_kernel(&self) -> ConvKernel {
        self.conv
    }

    /// Runs the following frames on `conv` (to compare kernels; see
    /// [`Program::with_conv_kernel`]).
    pub fn set_conv_kernel(&mut self, conv: ConvKernel) {
        self.conv = conv;
    }

    /// Runs one frame (see [`crate::run`]).
    pub fn run(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), RunError> {
        let program = Program::from_prepared(self.plan, &self.steps, self.conv);
        run_with(&program, input, &mut self.arena, output, &self.pool)
    }
}

impl std::error::Error for PlanError {}
impl std::error::Error for RunError {}
