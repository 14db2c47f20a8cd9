//! The device loop: read the link, decode frames, segment regions, answer.

use embedded_io::{Read, Write};
use heapless::Vec;
use msnet_runtime::{Plan, PlanError, Program, RunError, Step, run};

use crate::decoder::{Decoder, Event, Frame};
use crate::masks::{ClassMapShape, MaskError, measure};
use crate::preprocess::resize_bilinear;
use crate::protocol::{
    ErrorCode, FRAME_OVERHEAD, FrameWriter, InferenceFault, MAX_PAYLOAD_LEN, Measurements,
    RESULT_FIXED_LEN, Region, TYPE_SEGMENT, TYPE_SEGMENT_RESULT, write_error,
};

/// A monotonic microsecond clock (`no_std` has none; the board's timer provides it). Only
/// differences are used, so any epoch does, and wrap-around is tolerated.
pub trait Clock {
    fn now_us(&mut self) -> u64;
}

/// The memory the device works in, all the caller's (typically `static`s).
pub struct Buffers<'a> {
    /// Received bytes: [`crate::protocol::MAX_FRAME_LEN`] accepts every valid frame; less
    /// makes larger frames answer `PAYLOAD_TOO_LONG`.
    pub receive: &'a mut [u8],
    /// The network input, at least [`Plan::input_len`] floats.
    pub input: &'a mut [f32],
    /// The plan's working memory, at least [`Plan::arena_len`] floats.
    pub arena: &'a mut [f32],
    /// The class probabilities, at least [`Plan::output_len`] floats.
    pub probabilities: &'a mut [f32],
    /// The plan's decoded ops, at least [`Plan::len`] (contents on entry do not matter).
    pub steps: &'a mut [Step],
}

/// Why [`Device::new`] refused its plan or buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// The plan is not one this device can serve (the reason says which requirement).
    UnsupportedPlan(&'static str),
    /// An op of the plan failed its checks ([`Plan::prepare`]).
    InvalidPlan(PlanError),
    /// A buffer is shorter than the plan or the protocol needs.
    BufferTooSmall {
        what: &'static str,
        needed: usize,
        found: usize,
    },
}

/// What one [`Device::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Answered a segmentation request with its result.
    Segmented,
    /// Answered with an error frame carrying this code.
    Refused(ErrorCode),
    /// Read this many bytes; no frame is complete yet.
    Received(usize),
    /// The link's `read` returned 0.
    EndOfInput,
}

/// The fundus camera's screening module on one link.
///
/// `MAX_RUNS` bounds each mask's run list (a convex disc needs about two runs per row it
/// covers, plus one); a mask needing more is answered `MASKS_TOO_LARGE`.
pub struct Device<'a, L, C, const MAX_RUNS: usize> {
    link: L,
    decoder: Decoder<'a>,
    pipeline: Pipeline<'a, C, MAX_RUNS>,
}

/// Everything between a decoded request and its answer.
struct Pipeline<'a, C, const MAX_RUNS: usize> {
    program: Program<'a>,
    clock: C,
    /// Mask size, the plan's input size.
    width: u16,
    height: u16,
    input: &'a mut [f32],
    arena: &'a mut [f32],
    probabilities: &'a mut [f32],
    disc_runs: Vec<u16, MAX_RUNS>,
    cup_runs: Vec<u16, MAX_RUNS>,
}

impl<'a, L: Read + Write, C: Clock, const MAX_RUNS: usize> Device<'a, L, C, MAX_RUNS> {
    /// Checks that `plan` is a 2D RGB plan with at least 3 classes (background, rim, cup) and
    /// that the buffers are long enough for it, and prepares its ops into `buffers.steps`,
    /// once, so that serving cannot fail on them.
    pub fn new(
        link: L,
        clock: C,
        plan: Plan<'a>,
        buffers: Buffers<'a>,
    ) -> Result<Self, SetupError> {
        const {
            assert!(
                RESULT_FIXED_LEN + 2 * (4 + 2 * MAX_RUNS) <= MAX_PAYLOAD_LEN,
                "MAX_RUNS would let a result exceed the protocol's maximum payload"
            );
        }
        let header = plan.header();
        if header.dims != 2 {
            return Err(SetupError::UnsupportedPlan("the plan is not 2D"));
        }
        if header.in_channels != 3 {
            return Err(SetupError::UnsupportedPlan("the plan does not take RGB"));
        }
        if header.classes < 3 {
            return Err(SetupError::UnsupportedPlan(
                "the plan has fewer than 3 classes (background, rim, cup)",
            ));
        }
        let [_, height, width] = plan.size();
        let (Ok(width), Ok(height)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(SetupError::UnsupportedPlan(
                "the plan's sides do not fit the result's u16 mask size",
            ));
        };
        let input = prefix("the input buffer", buffers.input, plan.input_len())?;
        let arena = prefix("the arena", buffers.arena, plan.arena_len())?;
        let probabilities = prefix(
            "the probability buffer",
            buffers.probabilities,
            plan.output_len(),
        )?;
        if buffers.steps.len() < plan.len() {
            return Err(SetupError::BufferTooSmall {
                what: "the step buffer",
                needed: plan.len(),
                found: buffers.steps.len(),
            });
        }
        let program = plan
            .prepare(buffers.steps)
            .map_err(SetupError::InvalidPlan)?;
        let receive_len = buffers.receive.len();
        let decoder = Decoder::new(buffers.receive).map_err(|_| SetupError::BufferTooSmall {
            what: "the receive buffer",
            needed: FRAME_OVERHEAD,
            found: receive_len,
        })?;
        Ok(Self {
            link,
            decoder,
            pipeline: Pipeline {
                program,
                clock,
                width,
                height,
                input,
                arena,
                probabilities,
                disc_runs: Vec::new(),
                cup_runs: Vec::new(),
            },
        })
    }

    /// Does one thing: answers the next frame or rejection already received, or else reads
    /// once from the link. Call it in a loop; a link error is returned as is (the decoder's
    /// state is kept, so the loop may go on).
    pub fn poll(&mut self) -> Result<Served, L::Error> {
        match self.decoder.poll() {
            Some(Event::Frame(frame)) => self.pipeline.answer(&mut self.link, frame),
            Some(Event::Rejected(rejection)) => {
                let (code, reason) = rejection.error();
                refuse(&mut self.link, code, reason)
            }
            None => match self.decoder.fill(&mut self.link)? {
                0 => Ok(Served::EndOfInput),
                read => Ok(Served::Received(read)),
            },
        }
    }

    /// Tells the device the line has gone idle (a UART idle-line interrupt, or no byte for a
    /// character time or more): a frame begun and not finished is answered `TRUNCATED` and the
    /// bytes after its magic are searched again by the next [`Device::poll`]. Returns whether
    /// that happened.
    pub fn line_idle(&mut self) -> Result<bool, L::Error> {
        match self.decoder.abandon_partial() {
            Some(rejection) => {
                let (code, reason) = rejection.error();
                write_error(&mut self.link, code, reason)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

fn prefix<'b>(
    what: &'static str,
    buffer: &'b mut [f32],
    needed: usize,
) -> Result<&'b mut [f32], SetupError> {
    let found = buffer.len();
    buffer.get_mut(..needed).ok_or(SetupError::BufferTooSmall {
        what,
        needed,
        found,
    })
}

fn refuse<W: Write>(link: &mut W, code: ErrorCode, reason: u8) -> Result<Served, W::Error> {
    write_error(link, code, reason)?;
    Ok(Served::Refused(code))
}

fn elapsed_us(from: u64, to: u64) -> u32 {
    u32::try_from(to.wrapping_sub(from)).unwrap_or(u32::MAX)
}

impl<C: Clock, const MAX_RUNS: usize> Pipeline<'_, C, MAX_RUNS> {
    fn answer<W: Write>(&mut self, link: &mut W, frame: Frame<'_>) -> Result<Served, W::Error> {
        if frame.kind != TYPE_SEGMENT {
            return refuse(link, ErrorCode::UnknownType, frame.kind);
        }
        let region = match Region::parse(frame.payload) {
            Ok(region) => region,
            Err(fault) => return refuse(link, ErrorCode::BadRegion, fault as u8),
        };
        match self.segment(&region) {
            Ok(measurements) => {
                self.write_result(link, &measurements)?;
                Ok(Served::Segmented)
            }
            Err((code, reason)) => refuse(link, code, reason),
        }
    }

    /// Resizes, runs, and measures; the run lists hold the masks afterwards.
    fn segment(&mut self, region: &Region<'_>) -> Result<Measurements, (ErrorCode, u8)> {
        let (width, height) = (usize::from(self.width), usize::from(self.height));
        let start = self.clock.now_us();
        // The input buffer was sized from the plan at setup and the region checked by
        // `Region::parse`, so a mismatch here is a device fault, reported as one.
        resize_bilinear(region, width, height, self.input)
            .map_err(|_| (ErrorCode::InferenceFailed, InferenceFault::Buffer as u8))?;
        let resized = self.clock.now_us();
        run(&self.program, self.input, self.arena, self.probabilities).map_err(|e| {
            let fault = match e {
                RunError::Buffer { .. } => InferenceFault::Buffer,
                RunError::NonFiniteInput { .. } => InferenceFault::NonFiniteInput,
                RunError::NonFiniteOutput { .. } => InferenceFault::NonFiniteOutput,
            };
            (ErrorCode::InferenceFailed, fault as u8)
        })?;
        let inferred = self.clock.now_us();
        let shape = ClassMapShape {
            classes: self.program.plan().header().classes as usize,
            width,
            height,
        };
        let summary = measure(
            self.probabilities,
            shape,
            &mut self.disc_runs,
            &mut self.cup_runs,
        )
        .map_err(|e| match e {
            MaskError::Shape => (ErrorCode::InferenceFailed, InferenceFault::Buffer as u8),
            MaskError::TooManyRuns(mask) => (ErrorCode::MasksTooLarge, mask as u8),
        })?;
        let measured = self.clock.now_us();
        Ok(Measurements {
            width: self.width,
            height: self.height,
            disc_area: summary.disc_area,
            cup_area: summary.cup_area,
            disc_rows: summary.disc_rows,
            cup_rows: summary.cup_rows,
            vertical_cdr: summary.vertical_cdr,
            preprocess_us: elapsed_us(start, resized),
            inference_us: elapsed_us(resized, inferred),
            postprocess_us: elapsed_us(inferred, measured),
        })
    }

    /// Streams the result frame: measurements, then each run list as a u32 count and u16 runs.
    fn write_result<W: Write>(
        &self,
        link: &mut W,
        measurements: &Measurements,
    ) -> Result<(), W::Error> {
        let (disc, cup) = (self.disc_runs.as_slice(), self.cup_runs.as_slice());
        // Bounded by the assertion in `Device::new`: far below u32::MAX.
        let payload_len = RESULT_FIXED_LEN + 4 + 2 * disc.len() + 4 + 2 * cup.len();
        let mut frame = FrameWriter::begin(
            link,
            TYPE_SEGMENT_RESULT,
            u32::try_from(payload_len).unwrap_or(u32::MAX),
        )?;
        frame.put(&measurements.to_bytes())?;
        for runs in [disc, cup] {
            frame.put(&u32::try_from(runs.len()).unwrap_or(u32::MAX).to_le_bytes())?;
            frame.put_u16s(runs)?;
        }
        frame.finish()
    }
}
