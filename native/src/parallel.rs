//! Splitting a batched op across the runtime's [`Parallel`] seam. Batched tensors are
//! sample-major: sample `b`'s values are one contiguous block, so the runtime's per-sample
//! kernels run on sub-slices, and a chunk of work can span the end of one sample and the
//! start of the next.

use std::ops::Range;

use msnet_runtime::Parallel;
use msnet_runtime::parallel::split;

/// Fewest values a task of a memory-bound op gets: below this, waking a worker costs more than
/// the work.
const MIN_VALUES_PER_TASK: usize = 16 * 1024;

/// The fewest rows of `row_len` values a task of a memory-bound per-row op gets.
pub fn memory_bound_rows(row_len: usize) -> usize {
    (MIN_VALUES_PER_TASK / row_len.max(1)).max(1)
}

/// `work(units, chunk)` over `out`, made of `units` units of `unit_len` values, split into
/// contiguous chunks of whole units; for memory-bound ops (elementwise, softmax).
pub fn for_units<F>(par: &dyn Parallel, units: usize, unit_len: usize, out: &mut [f32], work: F)
where
    F: Fn(Range<usize>, &mut [f32]) + Sync,
{
    split(par, units, unit_len, memory_bound_rows(unit_len), out, work);
}

/// `work(b, rows, chunk)` for the rows `rows` of sample `b`, over `out`, a batch of `rows`
/// rows of `row_len` values per sample; `chunk` holds exactly those rows. Rows are the unit
/// of the runtime's convolution and resampling kernels; `min_rows` is the fewest rows a task
/// gets.
pub fn for_sample_rows<F>(
    par: &dyn Parallel,
    rows: usize,
    row_len: usize,
    min_rows: usize,
    out: &mut [f32],
    work: F,
) where
    F: Fn(usize, Range<usize>, &mut [f32]) + Sync,
{
    let batch = out.len() / (rows * row_len).max(1);
    split(par, batch * rows, row_len, min_rows, out, |units, chunk| {
        let mut done = 0;
        let mut at = units.start;
        while at < units.end {
            let b = at / rows;
            let end = units.end.min((b + 1) * rows);
            let n = (end - at) * row_len;
            work(b, at - b * rows..end - b * rows, &mut chunk[done..done + n]);
            done += n;
            at = end;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet_runtime::pool::ThreadPool;

    #[test]
    fn sample_rows_cover_every_row_once_at_any_width() {
        let pool = ThreadPool::new(3).unwrap();
        for par in [&msnet_runtime::Sequential as &dyn Parallel, &pool] {
            // 3 samples of 5 rows of 2 values; each value records (sample, row).
            let mut out = vec![0.0; 3 * 5 * 2];
            for_sample_rows(par, 5, 2, 1, &mut out, |b, rows, chunk| {
                for (i, r) in rows.enumerate() {
                    chunk[2 * i] = (10 * b + r) as f32;
                    chunk[2 * i + 1] = -1.0;
                }
            });
            let want: Vec<f32> = (0..3)
                .flat_map(|b| (0..5).flat_map(move |r| [(10 * b + r) as f32, -1.0]))
                .collect();
            assert_eq!(out, want);
        }
    }
}
