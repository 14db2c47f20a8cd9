//! Which samples an iteration sees.
//!
//! The order is a pure function of (seed, iteration): iteration `t` takes positions
//! `t*B .. t*B+B` of an endless stream made of one seeded permutation of the training set per
//! epoch. A resumed run therefore sees exactly the batches an uninterrupted run would, without
//! storing any random state, and every engine sees the same batches. [`training_batch`] adds
//! the augmentation, and is what every training loop calls.

use std::borrow::Cow;

use msnet::config::Augmentation;
use msnet::sample::Sample;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Indices into the training set for iteration `iteration`.
pub fn batch_indices(n: usize, batch: usize, seed: u64, iteration: usize) -> Vec<usize> {
    let mut cached: Option<(usize, Vec<usize>)> = None;
    (iteration * batch..(iteration + 1) * batch)
        .map(|pos| {
            let epoch = pos / n;
            if cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
                cached = Some((epoch, epoch_permutation(n, seed, epoch)));
            }
            cached.as_ref().map_or(0, |(_, p)| p[pos % n])
        })
        .collect()
}

/// The samples iteration `iteration` trains on: [`batch_indices`]' samples, each transformed
/// by [`crate::augment::augment`] when `augmentation` is on (borrowed untouched when it is
/// off). MSNet's loop and the U-Net baseline's both take their batches here, so a comparison
/// of the two trains on the same images.
pub fn training_batch<'a>(
    samples: &'a [Sample],
    batch: usize,
    seed: u64,
    iteration: usize,
    augmentation: &Augmentation,
) -> Vec<Cow<'a, Sample>> {
    batch_indices(samples.len(), batch, seed, iteration)
        .into_iter()
        .enumerate()
        .map(|(slot, i)| {
            let s = &samples[i];
            if augmentation.is_off() {
                Cow::Borrowed(s)
            } else {
                Cow::Owned(crate::augment::augment(
                    s,
                    augmentation,
                    seed,
                    iteration,
                    slot,
                ))
            }
        })
        .collect()
}

fn epoch_permutation(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    // Distinct streams per epoch; the constant keeps them apart from the init stream.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_ba7c_0000_0000 ^ epoch as u64);
    let mut p: Vec<usize> = (0..n).collect();
    p.shuffle(&mut rng);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_visits_each_sample_once() {
        let n = 7;
        let seen: Vec<usize> = (0..7).flat_map(|t| batch_indices(n, 2, 3, t)).collect();
        for epoch in seen.chunks(n) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            assert_eq!(e, (0..n).collect::<Vec<_>>());
        }
        assert_eq!(batch_indices(n, 2, 3, 5), batch_indices(n, 2, 3, 5));
        assert_ne!(
            (0..4)
                .flat_map(|t| batch_indices(n, 2, 3, t))
                .collect::<Vec<_>>(),
            (0..4)
                .flat_map(|t| batch_indices(n, 2, 4, t))
                .collect::<Vec<_>>()
        );
    }

    /// The order the loop had in `msnet-trainer`: a checkpoint written before the move resumes
    /// with the same batches, and runs stay comparable across engines.
    #[test]
    fn a_training_batch_is_the_indexed_samples_augmented_by_slot() {
        let samples: Vec<Sample> = (0..5)
            .map(|k| Sample {
                name: format!("s{k}"),
                channels: 1,
                shape: [1, 4, 4],
                image: (0..16).map(|v| (v * (k + 1)) as f32 / 80.0).collect(),
                labels: (0..16).map(|v| (v % 2) as u8).collect(),
            })
            .collect();
        let (seed, it) = (3, 2);
        let order = batch_indices(5, 3, seed, it);
        let plain = training_batch(&samples, 3, seed, it, &Augmentation::default());
        assert_eq!(plain.len(), 3);
        for (s, &i) in plain.iter().zip(&order) {
            assert!(matches!(s, Cow::Borrowed(b) if std::ptr::eq(*b, &samples[i])));
        }
        let a = Augmentation::DEFAULT;
        let augmented = training_batch(&samples, 3, seed, it, &a);
        for (slot, (s, &i)) in augmented.iter().zip(&order).enumerate() {
            let want = crate::augment::augment(&samples[i], &a, seed, it, slot);
            assert_eq!((&s.image, &s.labels), (&want.image, &want.labels));
        }
        assert!(
            augmented
                .iter()
                .zip(&plain)
                .any(|(a, p)| a.image != p.image)
        );
    }

    #[test]
    fn the_order_is_pinned() {
        let v: Vec<Vec<usize>> = (0..4).map(|t| batch_indices(5, 3, 5, t)).collect();
        assert_eq!(v, [[1, 3, 2], [4, 0, 1], [4, 0, 3], [2, 1, 3]]);
    }
}
