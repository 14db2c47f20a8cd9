//! The data-flow check of [`super::Plan::prepare`]: every arena range an op reads was written,
//! whole, by the latest earlier op that wrote any part of it. Otherwise the op would read
//! stale arena contents (or, where a later op overwrote part of it, a mix): a silently wrong
//! answer rather than a crash.
//!
//! # Why this is correct
//!
//! Sweep the ops in order, keeping the arena's *owner map*: for each position, the latest op
//! so far that wrote it (or none). A read of `r` is valid exactly when one op `j` owns every
//! position of `r`: then `j` wrote all of `r` and no later op wrote any of it, so `j` is the
//! latest op that wrote any part of `r` and it wrote `r` whole; conversely, if that latest op
//! wrote `r` whole it owns all of `r`. The map is a run of segments, and each run starts at
//! the start or the end of some write; a write `[s, e)` by op `k` removes the run starts in
//! `[s, e]`, then starts a run owned by `k` at `s` and, at `e`, one owned by whoever owned `e`
//! before. Two neighbouring runs never have the same owner (`k` is new, and the run at `e`
//! keeps its old owner, which is not `k`), so `r` has one owner exactly when it lies in one
//! run: its run's owner is an op and the next run starts at or after `r.end`.
//!
//! # Cost, without allocation
//!
//! Run starts are taken from the `2n` write ends of the `n` ops, sorted once by position (a
//! heapsort, `O(n log n)`); the live ones are counted in a Fenwick tree over that order, which
//! finds the live start before or after a position in `O(log n)`. A write inserts two starts
//! and removes each start at most once after inserting it, so the sweep is `O(n log n)`, where
//! comparing each read with every earlier op was `O(n²)` (some 30,000 range comparisons for
//! the 2D MSNet plan). The sorted order, the tree and the owner of each write's end are five
//! 32-bit words of [`Scratch`] in each [`Step`]: the storage the caller already gives
//! [`super::Plan::prepare`], so the check needs no other memory.

use core::fmt;
use core::ops::Range;

use super::{PlanError, Step};

/// What the data-flow check keeps in each step while preparing (meaningless afterwards):
/// slots `2i` and `2i + 1` of the sorted write ends and of the Fenwick tree live in step `i`,
/// with the owner of the arena after the end of step `i`'s write.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scratch {
    order: [u32; 2],
    tree: [u32; 2],
    owner: u32,
}

impl Scratch {
    pub(crate) const UNSET: Scratch = Scratch {
        order: [0; 2],
        tree: [0; 2],
        owner: 0,
    };
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(data-flow scratch)")
    }
}

/// The owner of positions no op wrote.
const NONE: u32 = u32::MAX;

/// Checks the data flow of `steps` (decoded, in execution order). A plan has fewer than 2^26
/// ops (its length is a `u32` of bytes, 64 per op), so slot numbers fit a `u32`.
pub(crate) fn check(steps: &mut [Step]) -> Result<(), PlanError> {
    let mut map = OwnerMap::new(steps);
    for index in 0..map.steps.len() {
        let step = &map.steps[index];
        let (reads, n) = ([step.a.clone(), step.b.clone()], step.reads().count());
        if !reads[..n].iter().all(|r| map.one_owner(r)) {
            return Err(PlanError::Op {
                index,
                reason: "reads arena values that no earlier op wrote (or that were since \
                         overwritten)",
            });
        }
        map.write(index);
    }
    // Prepared steps compare by what they do, not by what the check left in them.
    for step in steps.iter_mut() {
        step.flow = Scratch::UNSET;
    }
    Ok(())
}

/// The owner map over the steps' scratch (see the module docs). A write end is `2i` (the
/// start of step `i`'s write) or `2i + 1` (its end); "slot" is a place in their sorted order.
struct OwnerMap<'s> {
    steps: &'s mut [Step],
    /// Number of write ends, `2 · steps`.
    len: usize,
}

impl<'s> OwnerMap<'s> {
    fn new(steps: &'s mut [Step]) -> Self {
        let len = 2 * steps.len();
        let mut map = Self { steps, len };
        for slot in 0..len {
            map.set_order(slot, slot as u32);
            map.steps[slot / 2].flow.tree[slot % 2] = 0;
        }
        map.sort();
        map
    }

    /// Arena position of write end `end` (an op that writes the caller's output writes no
    /// arena range; its ends are never inserted).
    fn position(&self, end: u32) -> usize {
        let w = self.steps[end as usize / 2].writes();
        w.map_or(0, |w| {
            if end.is_multiple_of(2) {
                w.start
            } else {
                w.end
            }
        })
    }

    fn key(&self, slot: usize) -> (usize, u32) {
        let end = self.order(slot);
        (self.position(end), end)
    }

    fn order(&self, slot: usize) -> u32 {
        self.steps[slot / 2].flow.order[slot % 2]
    }

    fn set_order(&mut self, slot: usize, end: u32) {
        self.steps[slot / 2].flow.order[slot % 2] = end;
    }

    /// The op owning the run that starts at `slot`.
    fn owner(&self, slot: usize) -> u32 {
        let end = self.order(slot);
        if end.is_multiple_of(2) {
            end / 2
        } else {
            self.steps[end as usize / 2].flow.owner
        }
    }

    /// Heapsort of the write ends by (position, end): in place, no allocation.
    fn sort(&mut self) {
        for root in (0..self.len / 2).rev() {
            self.sift_down(root, self.len);
        }
        for last in (1..self.len).rev() {
            self.swap(0, last);
            self.sift_down(0, last);
        }
    }

    fn sift_down(&mut self, mut root: usize, len: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= len {
                return;
            }
            if child + 1 < len && self.key(child) < self.key(child + 1) {
                child += 1;
            }
            if self.key(root) >= self.key(child) {
                return;
            }
            self.swap(root, child);
            root = child;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        let (x, y) = (self.order(a), self.order(b));
        self.set_order(a, y);
        self.set_order(b, x);
    }

    /// The first slot whose key is not `below` (which holds for a prefix of the slots).
    fn first_slot(&self, below: impl Fn((usize, u32)) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.key(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Adds `delta` (±1) at `slot`: a run start inserted or removed.
    fn add(&mut self, slot: usize, delta: i32) {
        let mut i = slot + 1;
        while i <= self.len {
            let cell = &mut self.steps[(i - 1) / 2].flow.tree[(i - 1) % 2];
            *cell = cell.wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    /// Live run starts in slots `0..slot`.
    fn count_below(&self, slot: usize) -> u32 {
        let (mut i, mut sum) = (slot, 0);
        while i > 0 {
            sum += self.steps[(i - 1) / 2].flow.tree[(i - 1) % 2];
            i -= i & i.wrapping_neg();
        }
        sum
    }

    /// The slot of the `k`-th live run start (`k ≥ 1`), if there are that many.
    fn kth(&self, mut k: u32) -> Option<usize> {
        let mut slot = 0;
        let mut step = self.len.checked_ilog2().map_or(0, |b| 1usize << b);
        while step > 0 {
            if slot + step <= self.len {
                let cell = self.steps[(slot + step - 1) / 2].flow.tree[(slot + step - 1) % 2];
                if cell < k {
                    slot += step;
                    k -= cell;
                }
            }
            step /= 2;
        }
        (slot < self.len).then_some(slot)
    }

    /// The last live run start before `slot`.
    fn before(&self, slot: usize) -> Option<usize> {
        match self.count_below(slot) {
            0 => None,
            n => self.kth(n),
        }
    }

    /// The first live run start at or after `slot`.
    fn from(&self, slot: usize) -> Option<usize> {
        self.kth(self.count_below(slot) + 1)
    }

    /// The op owning arena position `at`, if any.
    fn owner_at(&self, at: usize) -> u32 {
        self.run_at(at).map_or(NONE, |slot| self.owner(slot))
    }

    /// The live run start of the run holding arena position `at`.
    fn run_at(&self, at: usize) -> Option<usize> {
        self.before(self.first_slot(|(position, _)| position <= at))
    }

    /// Whether one op owns every position of `r` (non-empty).
    fn one_owner(&self, r: &Range<usize>) -> bool {
        let Some(run) = self.run_at(r.start) else {
            return false;
        };
        let next = self.from(run + 1).map(|slot| self.key(slot).0);
        self.owner(run) != NONE && next.is_none_or(|start| start >= r.end)
    }

    /// Records step `index`'s write, if it writes the arena.
    fn write(&mut self, index: usize) {
        let Some(w) = self.steps[index].writes().cloned() else {
            return;
        };
        let after = self.owner_at(w.end);
        let first = self.first_slot(|(position, _)| position < w.start);
        while let Some(slot) = self.from(first).filter(|&s| self.key(s).0 <= w.end) {
            self.add(slot, -1);
        }
        self.steps[index].flow.owner = after;
        let (start, end) = (2 * index as u32, 2 * index as u32 + 1);
        let slot = self.first_slot(|key| key < (w.start, start));
        self.add(slot, 1);
        let slot = self.first_slot(|key| key < (w.end, end));
        self.add(slot, 1);
    }
}

#[cfg(test)]
// An op reading one range is written `&[start..end]`: a list of ranges, meant.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::format::Opcode;
    use std::vec::Vec;

    /// An op: the ranges it reads, and the range it writes (`None`: the caller's output).
    type Op<'a> = (&'a [Range<usize>], Option<Range<usize>>);

    /// Steps doing `ops`, opcodes chosen by their number of reads.
    fn steps(ops: &[Op<'_>]) -> Vec<Step> {
        let step = |(reads, write): &Op<'_>| Step {
            opcode: match (reads.len(), write.is_some()) {
                (0, _) => Opcode::Normalize,
                (1, true) => Opcode::Relu,
                (1, false) => Opcode::ClassSoftmax,
                _ => Opcode::Mul,
            },
            a: reads.first().cloned().unwrap_or(0..0),
            b: reads.get(1).cloned().unwrap_or(0..0),
            out: write.clone().unwrap_or(0..0),
            ..Step::UNSET
        };
        ops.iter().map(step).collect()
    }

    /// Index of the first op whose read fails, by the definition (the latest earlier write
    /// that overlaps a read must contain it), comparing every read with every earlier op.
    fn reference(ops: &[Op<'_>]) -> Option<usize> {
        let steps = steps(ops);
        let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
        (0..steps.len()).find(|&i| {
            steps[i].reads().any(|read| {
                let writer = steps[..i]
                    .iter()
                    .rev()
                    .find_map(|e| e.writes().filter(|out| overlaps(out, read)));
                !writer.is_some_and(|out| out.start <= read.start && read.end <= out.end)
            })
        })
    }

    /// Index of the op [`check`] refuses, if any.
    fn failing_op(ops: &[Op<'_>]) -> Option<usize> {
        match check(&mut steps(ops)) {
            Ok(()) => None,
            Err(PlanError::Op { index, reason }) => {
                assert!(reason.contains("no earlier op wrote"), "{reason}");
                Some(index)
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_read_no_op_wrote_is_refused() {
        let ops: [Op<'_>; 3] = [
            (&[], Some(0..8)),
            (&[16..24], Some(32..40)),
            (&[32..40], None),
        ];
        assert_eq!(failing_op(&ops), Some(1));
        // Next to a write, sharing no position with it.
        let ops: [Op<'_>; 3] = [
            (&[], Some(0..8)),
            (&[8..16], Some(32..40)),
            (&[32..40], None),
        ];
        assert_eq!(failing_op(&ops), Some(1));
        // Written only after the read.
        let ops: [Op<'_>; 3] = [
            (&[], Some(0..8)),
            (&[32..40], Some(32..40)),
            (&[32..40], None),
        ];
        assert_eq!(failing_op(&ops), Some(1));
    }

    #[test]
    fn a_read_partly_overwritten_before_it_is_refused() {
        let ops: [Op<'_>; 4] = [
            (&[], Some(0..16)),
            (&[0..16], Some(32..40)),
            (&[32..40, 32..40], Some(12..20)), // overwrites the end of op 0's output
            (&[0..16], None),
        ];
        assert_eq!(failing_op(&ops), Some(3));
    }

    #[test]
    fn a_read_spanning_two_writes_is_refused() {
        let ops: [Op<'_>; 4] = [
            (&[], Some(0..8)),
            (&[0..8], Some(8..16)),
            (&[0..16], Some(32..48)),
            (&[32..48], None),
        ];
        assert_eq!(failing_op(&ops), Some(2));
        // A later write over part of an earlier one makes two writes of the range.
        let ops: [Op<'_>; 4] = [
            (&[], Some(0..16)),
            (&[0..16], Some(32..40)),
            (&[32..40], Some(0..8)),
            (&[0..16], None),
        ];
        assert_eq!(failing_op(&ops), Some(3));
    }

    #[test]
    fn reads_inside_what_one_op_wrote_last_are_accepted() {
        let ops: [Op<'_>; 6] = [
            (&[], Some(0..32)),
            (&[0..32], Some(32..48)),
            // Overwrites the middle of op 0's output: its two ends stay readable.
            (&[32..48], Some(8..24)),
            (&[0..8, 24..32], Some(32..40)),
            (&[8..24, 32..40], Some(40..48)),
            (&[40..48], None),
        ];
        assert_eq!(failing_op(&ops), None);
        assert_eq!(reference(&ops), None);
    }

    /// Random small plans (ranges on a short arena, so that writes and reads collide often):
    /// the sweep refuses exactly the plans, and names exactly the op, that comparing every
    /// read with every earlier op does.
    #[test]
    fn the_sweep_agrees_with_the_definition_on_random_plans() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let count = 2 + next(14);
            let mut range = || {
                let start = next(24);
                start..start + 1 + next(8)
            };
            let ops: Vec<(Vec<_>, _)> = (0..count)
                .map(|i| {
                    let reads = if i == 0 {
                        0
                    } else {
                        1 + usize::from(i % 3 == 0)
                    };
                    let reads = (0..reads).map(|_| range()).collect();
                    (reads, (i + 1 < count).then(&mut range))
                })
                .collect();
            let ops: Vec<Op<'_>> = ops.iter().map(|(r, w)| (&r[..], w.clone())).collect();
            let expected = reference(&ops);
            assert_eq!(failing_op(&ops), expected, "{ops:?}");
            match expected {
                None => accepted += 1,
                Some(_) => refused += 1,
            }
        }
        assert!(
            accepted > 100 && refused > 100,
            "{accepted} valid, {refused} not"
        );
    }
}
