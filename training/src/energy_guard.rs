//! The energy guard: when a step's phase softmaxes see inputs beyond a limit, the run goes
//! back to the last state whose forward pass stayed within it and continues at half the
//! learning rate.
//!
//! Why: MSNet's v-update energies are quadratic in the features and compound level by level
//! through the V-cycle, so a few Adam steps can take them from tens to 1e7–1e11; every phase
//! softmax then saturates, no layer before the output head gets a gradient again, and the run
//! ends on the background (ACDC, docs/results.md). Whether that happens depends on the step
//! size and the split, so no single learning rate avoids it without slowing every run. The
//! guard leaves a run that stays in range bit-for-bit as it was and spends the smaller step
//! only where the energies left their range.
//!
//! A state becomes the one to return to only after a step has run its forward pass on it
//! within the limit, so a rollback never lands on weights that are already out of range.

use msnet::Weights;

use crate::checkpoint::CheckpointState;
use crate::{Engine, TrainError};

/// Halvings after which the guard gives up: by then the learning rate is 1/1024 of the
/// schedule's, and a run that still leaves the range is not one a smaller step will save.
pub const MAX_HALVINGS: u32 = 10;

/// Weights, optimiser state and loop state at the end of an iteration.
struct Snapshot {
    weights: Weights,
    optimizer: Vec<u8>,
    state: CheckpointState,
}

impl Snapshot {
    fn take(engine: &dyn Engine, state: &CheckpointState) -> Result<Self, TrainError> {
        Ok(Self {
            weights: engine.weights(),
            optimizer: engine.optimizer_state().map_err(|e| {
                TrainError::Checkpoint(format!("cannot keep the optimiser state: {e}"))
            })?,
            state: state.clone(),
        })
    }
}

/// A rollback the guard made, for the progress report.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollback {
    /// The iteration whose forward pass went out of range (1-based).
    pub at: usize,
    /// Iterations completed in the state the run went back to.
    pub to: usize,
    /// The largest phase-softmax input that step met.
    pub energy: f32,
    /// Halvings of the learning rate from now on.
    pub lr_halvings: u32,
}

/// The guard of one run.
pub struct EnergyGuard {
    limit: f32,
    /// The state to go back to: the start, or one whose next forward pass stayed within the
    /// limit.
    good: Snapshot,
    /// Whether `good` has been confirmed by a forward pass (the start has not).
    confirmed: bool,
    /// The state after the last step, not yet confirmed by a forward pass.
    pending: Option<Snapshot>,
}

impl EnergyGuard {
    /// A guard starting from the engine's current state (the run's start or its resume point).
    pub fn new(
        limit: f32,
        engine: &dyn Engine,
        state: &CheckpointState,
    ) -> Result<Self, TrainError> {
        if !(limit.is_finite() && limit > 0.0) {
            return Err(TrainError::Options(format!(
                "the energy limit must be a positive number, not {limit}"
            )));
        }
        if engine.largest_phase_input().is_none() {
            return Err(TrainError::Options(format!(
                "the {} engine does not measure its phase-softmax inputs, so it cannot run with an energy limit; use the native engine",
                engine.name()
            )));
        }
        Ok(Self {
            limit,
            good: Snapshot::take(engine, state)?,
            confirmed: false,
            pending: None,
        })
    }

    /// After the step that completed iteration `at` (1-based): `Ok(None)` when its forward
    /// pass stayed within the limit, and the state after it is kept as the next candidate;
    /// otherwise the engine and `state` are put back to the last confirmed state with one
    /// more halving, and the rollback is returned.
    pub fn after_step(
        &mut self,
        engine: &mut dyn Engine,
        state: &mut CheckpointState,
        at: usize,
    ) -> Result<Option<Rollback>, TrainError> {
        // Engines that measure report every step; NaN counts as out of range.
        let energy = engine.largest_phase_input().unwrap_or(f32::NAN);
        if energy <= self.limit {
            if let Some(next) = self.pending.take() {
                self.good = next;
            }
            self.confirmed = true;
            self.pending = Some(Snapshot::take(engine, state)?);
            return Ok(None);
        }
        self.pending = None;
        if !self.confirmed {
            // The forward pass ran on the starting weights, which no learning rate changes.
            return Err(TrainError::Options(format!(
                "iteration {at}: the phase softmaxes' inputs reached {energy:e} on the weights this run started or resumed from, above the energy limit {:e}; start afresh, with a lower --lr, or with a higher --energy-limit",
                self.limit
            )));
        }
        let lr_halvings = state.lr_halvings + 1;
        if lr_halvings > MAX_HALVINGS {
            return Err(TrainError::Options(format!(
                "iteration {at}: the phase softmaxes' inputs reached {energy:e}, above the energy limit {:e}, after {MAX_HALVINGS} halvings of the learning rate; start with a lower --lr or raise --energy-limit",
                self.limit
            )));
        }
        engine
            .restore(&self.good.weights, &self.good.optimizer)
            .map_err(|e| TrainError::Checkpoint(format!("cannot roll back: {e}")))?;
        // Time and the halvings carry on; progress and losses are the restored state's.
        let seconds = state.seconds;
        *state = self.good.state.clone();
        state.seconds = seconds;
        state.lr_halvings = lr_halvings;
        self.good.state.lr_halvings = lr_halvings;
        Ok(Some(Rollback {
            at,
            to: state.iteration,
            energy,
            lr_halvings,
        }))
    }
}
