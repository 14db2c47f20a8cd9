//! Connected regions of a 2D label map, found without an allocator: a union-find forest kept
//! in a buffer the caller owns (one `i32` per pixel), so the fundus camera can run it from a
//! static buffer.
//!
//! Regions are 8-connected: pixels that touch at a corner belong together, so a thin
//! diagonal stretch of a disc's boundary stays part of the disc.

use core::fmt;

/// Why a label map's regions could not be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionsError {
    /// The scratch buffer holds fewer entries than the map has pixels.
    Scratch { needed: usize, given: usize },
    /// The map's length is not a whole number of rows of `width` pixels (or `width` is 0), or
    /// it has more pixels than the forest can index.
    Shape { len: usize, width: usize },
}

impl fmt::Display for RegionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scratch { needed, given } => write!(
                f,
                "finding regions needs a scratch buffer of {needed} entries (one per pixel), \
                 given {given}"
            ),
            Self::Shape { len, width } => write!(
                f,
                "a label map of {len} pixels is not whole rows of {width} pixels"
            ),
        }
    }
}

impl core::error::Error for RegionsError {}

/// Keeps the largest 8-connected region of the pixels where `inside` holds and gives every
/// other pixel where it holds the label `outside`. Ties go to the region whose first pixel
/// comes first in raster order. `scratch` needs one entry per pixel.
pub fn keep_largest(
    labels: &mut [u8],
    width: usize,
    scratch: &mut [i32],
    inside: impl Fn(u8) -> bool,
    outside: u8,
) -> Result<(), RegionsError> {
    if width == 0 || !labels.len().is_multiple_of(width) || labels.len() > i32::MAX as usize {
        return Err(RegionsError::Shape {
            len: labels.len(),
            width,
        });
    }
    if scratch.len() < labels.len() {
        return Err(RegionsError::Scratch {
            needed: labels.len(),
            given: scratch.len(),
        });
    }
    let forest = &mut scratch[..labels.len()];
    let is_in = |i: usize| inside(labels[i]);
    for i in 0..labels.len() {
        if !is_in(i) {
            continue;
        }
        forest[i] = -1;
        let (x, y) = (i % width, i / width);
        if x > 0 && is_in(i - 1) {
            union(forest, i, i - 1);
        }
        if y > 0 {
            let up = i - width;
            let first = if x > 0 { up - 1 } else { up };
            let last = if x + 1 < width { up + 1 } else { up };
            for n in first..=last {
                if is_in(n) {
                    union(forest, i, n);
                }
            }
        }
    }
    // Roots hold minus their region's size; the first root met with the largest size wins.
    let mut largest: Option<(usize, i32)> = None;
    for i in 0..labels.len() {
        if is_in(i) {
            let r = root(forest, i);
            let size = -forest[r];
            if largest.is_none_or(|(_, best)| size > best) {
                largest = Some((r, size));
            }
        }
    }
    let Some((kept, _)) = largest else {
        return Ok(());
    };
    for (i, label) in labels.iter_mut().enumerate() {
        if inside(*label) && root(forest, i) != kept {
            *label = outside;
        }
    }
    Ok(())
}

/// The root of `i`'s tree, halving the path on the way.
fn root(forest: &mut [i32], mut i: usize) -> usize {
    while forest[i] >= 0 {
        let parent = forest[i] as usize;
        if forest[parent] >= 0 {
            forest[i] = forest[parent];
        }
        i = parent;
    }
    i
}

/// Joins the trees of `a` and `b`, the smaller under the larger.
fn union(forest: &mut [i32], a: usize, b: usize) {
    let (ra, rb) = (root(forest, a), root(forest, b));
    if ra == rb {
        return;
    }
    let (big, small) = if forest[ra] <= forest[rb] {
        (ra, rb)
    } else {
        (rb, ra)
    };
    forest[big] += forest[small];
    forest[small] = big as i32;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map from rows of characters: '.' is 0, digits are labels.
    fn map<const N: usize>(rows: &[&str]) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, c) in rows.iter().flat_map(|r| r.bytes()).enumerate() {
            out[i] = if c == b'.' { 0 } else { c - b'0' };
        }
        out
    }

    #[test]
    fn the_largest_region_stays_and_the_others_take_the_outside_label() {
        let mut l: [u8; 30] = map(&[
            "11....", //
            "11..1.", //
            "...11.", //
            "....11", //
            "1.....",
        ]);
        let mut scratch = [0; 30];
        keep_largest(&mut l, 6, &mut scratch, |v| v == 1, 7).unwrap();
        let want: [u8; 30] = map(&[
            "77....", //
            "77..1.", //
            "...11.", //
            "....11", //
            "7.....",
        ]);
        assert_eq!(l, want);
    }

    #[test]
    fn pixels_touching_at_a_corner_are_one_region() {
        // Seven pixels, most linked to the next only at a corner: 8-connected, one region.
        let mut l: [u8; 18] = map(&[
            "1....1", //
            ".1..1.", //
            "..11.1",
        ]);
        let mut scratch = [0; 18];
        keep_largest(&mut l, 6, &mut scratch, |v| v == 1, 0).unwrap();
        assert_eq!(l.iter().filter(|&&v| v == 1).count(), 7);
    }

    #[test]
    fn ties_go_to_the_first_region_in_raster_order() {
        let mut l: [u8; 10] = map(&[
            "11...", //
            "...11",
        ]);
        let mut scratch = [0; 10];
        keep_largest(&mut l, 5, &mut scratch, |v| v == 1, 0).unwrap();
        let want: [u8; 10] = map(&["11...", "....."]);
        assert_eq!(l, want);
    }

    #[test]
    fn an_empty_mask_is_left_alone_and_bad_shapes_are_refused() {
        let mut l = [0u8; 12];
        let mut scratch = [0; 12];
        keep_largest(&mut l, 4, &mut scratch, |v| v == 1, 5).unwrap();
        assert_eq!(l, [0; 12]);
        assert_eq!(
            keep_largest(&mut l, 5, &mut scratch, |v| v == 1, 5),
            Err(RegionsError::Shape { len: 12, width: 5 })
        );
        assert_eq!(
            keep_largest(&mut l, 0, &mut scratch, |v| v == 1, 5),
            Err(RegionsError::Shape { len: 12, width: 0 })
        );
        assert_eq!(
            keep_largest(&mut l, 4, &mut scratch[..11], |v| v == 1, 5),
            Err(RegionsError::Scratch {
                needed: 12,
                given: 11
            })
        );
    }

    /// The plain twin: flood fill from every pixel, the region sizes compared directly.
    fn keep_largest_by_flood(labels: &mut [u8], width: usize, outside: u8) {
        let n = labels.len();
        let mut region = [usize::MAX; 64];
        let mut sizes = [0usize; 64];
        let mut regions = 0;
        for start in 0..n {
            if labels[start] != 1 || region[start] != usize::MAX {
                continue;
            }
            let mut stack = [0usize; 64];
            let mut top = 1;
            stack[0] = start;
            region[start] = regions;
            while top > 0 {
                top -= 1;
                let i = stack[top];
                sizes[regions] += 1;
                let (x, y) = ((i % width) as isize, (i / width) as isize);
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx >= width as isize {
                            continue;
                        }
                        let j = ny as usize * width + nx as usize;
                        if j < n && labels[j] == 1 && region[j] == usize::MAX {
                            region[j] = regions;
                            stack[top] = j;
                            top += 1;
                        }
                    }
                }
            }
            regions += 1;
        }
        let best = (0..regions).fold(0, |b, r| if sizes[r] > sizes[b] { r } else { b });
        for i in 0..n {
            if labels[i] == 1 && region[i] != best {
                labels[i] = outside;
            }
        }
    }

    #[test]
    fn agrees_with_a_flood_fill_on_random_maps() {
        // A small linear congruential generator: maps of 8×8 with about 40% set.
        let mut state = 12345u32;
        for _ in 0..500 {
            let mut l = [0u8; 64];
            for v in l.iter_mut() {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = u8::from((state >> 24) < 102);
            }
            let mut want = l;
            keep_largest_by_flood(&mut want, 8, 2);
            let mut scratch = [0; 64];
            keep_largest(&mut l, 8, &mut scratch, |v| v == 1, 2).unwrap();
            assert_eq!(l, want);
        }
    }
}
