//! Run-length encoding of binary masks into a fixed-capacity run list.
//!
//! A mask is read row-major. Its runs alternate 0, 1, 0, …, starting with a run of 0s (which
//! is empty when the first pixel is 1), each a u16, and add up to the pixel count. A run
//! longer than 65,535 is cut as `65535, 0, rest`: the empty run of the other value keeps the
//! alternation.

use heapless::Vec;

/// The run list was full; the mask needs more runs than its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunsFull;

/// Encodes one mask, a pixel at a time, into a borrowed run list.
pub struct RunEncoder<'r, const N: usize> {
    runs: &'r mut Vec<u16, N>,
    value: bool,
    run: u16,
    full: bool,
}

impl<'r, const N: usize> RunEncoder<'r, N> {
    /// Starts a mask, clearing `runs`.
    pub fn new(runs: &'r mut Vec<u16, N>) -> Self {
        runs.clear();
        Self {
            runs,
            value: false,
            run: 0,
            full: false,
        }
    }

    /// Adds the next pixel.
    pub fn push(&mut self, pixel: bool) {
        if pixel != self.value {
            self.emit(self.run);
            self.value = pixel;
            self.run = 0;
        } else if self.run == u16::MAX {
            self.emit(u16::MAX);
            self.emit(0);
            self.run = 0;
        }
        self.run += 1;
    }

    /// Ends the mask with its last run (so a mask always has at least one run).
    pub fn finish(mut self) -> Result<(), RunsFull> {
        self.emit(self.run);
        if self.full { Err(RunsFull) } else { Ok(()) }
    }

    // Once full, later runs are dropped and `finish` reports it: the pixel loop stays free of
    // error handling.
    fn emit(&mut self, run: u16) {
        if self.runs.push(run).is_err() {
            self.full = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<const N: usize>(mask: &[bool]) -> Result<std::vec::Vec<u16>, RunsFull> {
        let mut runs = Vec::<u16, N>::new();
        let mut encoder = RunEncoder::new(&mut runs);
        for &p in mask {
            encoder.push(p);
        }
        encoder.finish()?;
        Ok(runs.to_vec())
    }

    fn decode(runs: &[u16]) -> std::vec::Vec<bool> {
        let mut mask = std::vec::Vec::new();
        for (i, &run) in runs.iter().enumerate() {
            mask.extend(std::iter::repeat_n(i % 2 == 1, usize::from(run)));
        }
        mask
    }

    #[test]
    fn runs_alternate_from_a_zero_run() {
        let mask = [true, true, false, true, false, false, false];
        assert_eq!(encode::<8>(&mask).unwrap(), [0, 2, 1, 1, 3]);
        assert_eq!(encode::<8>(&[false; 5]).unwrap(), [5]);
        assert_eq!(encode::<8>(&[true; 5]).unwrap(), [0, 5]);
        assert_eq!(encode::<8>(&[]).unwrap(), [0]);
    }

    #[test]
    fn long_runs_are_cut_with_an_empty_run() {
        let mut mask = std::vec![true; 2 * 65_535 + 10];
        mask.push(false);
        let runs = encode::<16>(&mask).unwrap();
        assert_eq!(runs, [0, 65_535, 0, 65_535, 0, 10, 1]);
        assert_eq!(decode(&runs), mask);
    }

    #[test]
    fn a_mask_needing_more_runs_than_the_capacity_is_refused() {
        let stripes: std::vec::Vec<bool> = (0..10).map(|i| i % 2 == 1).collect();
        assert_eq!(encode::<10>(&stripes).unwrap().len(), 10);
        assert_eq!(encode::<9>(&stripes), Err(RunsFull));
    }

    #[test]
    fn decoding_gives_the_mask_back() {
        let mask: std::vec::Vec<bool> = (0u32..1000).map(|i| (i * i / 7) % 3 == 0).collect();
        assert_eq!(decode(&encode::<1001>(&mask).unwrap()), mask);
    }
}
