//! Augmentation of training batches ([`msnet::config::Augmentation`]): each image of a batch
//! is transformed by draws from a generator seeded with (run seed, iteration, batch slot), a
//! pure function like the batch order, so a resumed run trains on exactly the images an
//! uninterrupted one would, and both engines see the same ones.

use msnet::config::Augmentation;
use msnet::sample::Sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sample `slot` of iteration `iteration`'s batch, transformed.
pub fn augment(s: &Sample, a: &Augmentation, seed: u64, iteration: usize, slot: usize) -> Sample {
    // Distinct from the initialisation and batch-order streams.
    let stream = (iteration as u64) << 8 | slot as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa06e_0000_0000_0000 ^ stream);
    let [_, h, w] = s.shape;
    let turns = match (a.rot90, h == w) {
        (false, _) => 0,
        (true, true) => rng.random_range(0..4),
        (true, false) => 2 * rng.random_range(0..2),
    };
    let (flip_h, flip_w) = if a.flip {
        (rng.random_bool(0.5), rng.random_bool(0.5))
    } else {
        (false, false)
    };
    let mut out = s.clone();
    if turns != 0 || flip_h || flip_w {
        let source = |y: usize, x: usize| {
            let (y, x) = match turns {
                1 => (x, w - 1 - y),
                2 => (h - 1 - y, w - 1 - x),
                3 => (h - 1 - x, y),
                _ => (y, x),
            };
            let y = if flip_h { h - 1 - y } else { y };
            let x = if flip_w { w - 1 - x } else { x };
            y * w + x
        };
        let plane = h * w;
        for (dst, src) in out
            .labels
            .chunks_exact_mut(plane)
            .zip(s.labels.chunks_exact(plane))
        {
            remap(dst, src, w, &source);
        }
        for (dst, src) in out
            .image
            .chunks_exact_mut(plane)
            .zip(s.image.chunks_exact(plane))
        {
            remap(dst, src, w, &source);
        }
    }
    if a.brightness > 0.0 || a.contrast > 0.0 || a.gamma > 0.0 {
        let offset = symmetric(&mut rng, a.brightness);
        let scale = 1.0 + symmetric(&mut rng, a.contrast);
        let power = symmetric(&mut rng, a.gamma).exp();
        for v in &mut out.image {
            *v = (((*v - 0.5) * scale + 0.5 + offset).clamp(0.0, 1.0)).powf(power);
        }
    }
    out
}

/// Uniform in `±amplitude`; 0, without a draw, when the amplitude is 0.
fn symmetric(rng: &mut ChaCha8Rng, amplitude: f32) -> f32 {
    if amplitude > 0.0 {
        rng.random_range(-amplitude..=amplitude)
    } else {
        0.0
    }
}

/// `dst[y·w + x] = src[source(y, x)]` over one plane.
fn remap<T: Copy>(dst: &mut [T], src: &[T], w: usize, source: &impl Fn(usize, usize) -> usize) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = src[source(i / w, i % w)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(h: usize, w: usize) -> Sample {
        let n = h * w;
        Sample {
            name: "s".into(),
            channels: 2,
            shape: [1, h, w],
            image: (0..2 * n).map(|i| i as f32 / (2 * n) as f32).collect(),
            labels: (0..n).map(|i| (i % 3) as u8).collect(),
        }
    }

    #[test]
    fn geometry_moves_image_and_labels_together_and_is_a_permutation() {
        let s = sample(4, 4);
        let a = Augmentation {
            flip: true,
            rot90: true,
            ..Augmentation::default()
        };
        let mut changed = false;
        for it in 0..8 {
            let t = augment(&s, &a, 1, it, 0);
            let again = augment(&s, &a, 1, it, 0);
            assert_eq!(
                (&t.image, &t.labels),
                (&again.image, &again.labels),
                "seeded"
            );
            changed |= t.image != s.image;
            // Channel 0 pixel values are distinct, so each one's new place says where its
            // label went.
            for (j, &v) in t.image[..16].iter().enumerate() {
                let from = s.image.iter().position(|&x| x == v).unwrap();
                assert_eq!(t.labels[j], s.labels[from]);
                assert_eq!(
                    t.image[16 + j],
                    s.image[16 + from],
                    "channels move together"
                );
            }
            let mut sorted = t.image.clone();
            sorted.sort_by(f32::total_cmp);
            assert_eq!(sorted, s.image);
        }
        assert!(changed, "eight draws left every image as it was");
        // Not square: only half turns, so the shape holds.
        let r = sample(2, 6);
        for it in 0..8 {
            assert_eq!(augment(&r, &a, 2, it, 1).image.len(), r.image.len());
        }
    }

    #[test]
    fn intensity_jitter_stays_in_range_and_leaves_labels() {
        let s = sample(8, 8);
        let t = augment(&s, &Augmentation::DEFAULT, 3, 5, 2);
        assert!(t.image.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(t.image, s.image);
        let off = augment(&s, &Augmentation::default(), 3, 5, 2);
        assert_eq!((off.image, off.labels), (s.image, s.labels));
    }
}
