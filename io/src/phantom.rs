//! Generated labelled images ("phantoms") for tests, benchmarks and golden inputs: nested
//! ellipses (ellipsoids in 3D) with class-dependent intensities, smooth shading and noise —
//! structure like a cell (nucleus in cytoplasm) or an optic disc (cup in disc), with no
//! research data involved.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use msnet::sample::Sample;

/// A phantom of `classes` nested regions (class 0 = background, each next class inside the
/// previous one), `channels` channels, shape `[D, H, W]`, intensities in `[0, 1]`.
/// The same arguments always give the same sample.
pub fn nested_ellipses(seed: u64, channels: usize, shape: [usize; 3], classes: usize) -> Sample {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let [d, h, w] = shape;
    let centre = [
        d as f32 / 2.0 + rng.random_range(-0.1..0.1) * d as f32,
        h as f32 / 2.0 + rng.random_range(-0.15..0.15) * h as f32,
        w as f32 / 2.0 + rng.random_range(-0.15..0.15) * w as f32,
    ];
    let outer = [
        (d as f32 * rng.random_range(0.3..0.4)).max(0.5),
        h as f32 * rng.random_range(0.22..0.34),
        w as f32 * rng.random_range(0.22..0.34),
    ];
    // Intensity of each class per channel: well separated but not trivially so.
    let levels: Vec<Vec<f32>> = (0..classes)
        .map(|c| {
            (0..channels)
                .map(|ch| {
                    let base = 0.15 + 0.7 * c as f32 / (classes - 1).max(1) as f32;
                    (base + 0.1 * ((ch + c) % 2) as f32 + rng.random_range(-0.05..0.05))
                        .clamp(0.0, 1.0)
                })
                .collect()
        })
        .collect();
    let voxels = d * h * w;
    let mut labels = vec![0u8; voxels];
    let mut image = vec![0f32; channels * voxels];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let dz = if d > 1 {
                    (z as f32 + 0.5 - centre[0]) / outer[0]
                } else {
                    0.0
                };
                let dy = (y as f32 + 0.5 - centre[1]) / outer[1];
                let dx = (x as f32 + 0.5 - centre[2]) / outer[2];
                let r = (dz * dz + dy * dy + dx * dx).sqrt();
                // Class c occupies radius < 1 - 0.3 (c - 1) of the outer ellipse.
                let class = (1..classes)
                    .rev()
                    .find(|&c| r < 1.0 - 0.3 * (c - 1) as f32)
                    .unwrap_or(0);
                let j = (z * h + y) * w + x;
                labels[j] = class as u8;
                let shade = 0.08 * (x as f32 / w as f32 - 0.5);
                for ch in 0..channels {
                    let noise = rng.random_range(-0.06..0.06);
                    image[ch * voxels + j] = (levels[class][ch] + shade + noise).clamp(0.0, 1.0);
                }
            }
        }
    }
    Sample {
        name: format!("phantom{seed}"),
        channels,
        shape,
        image,
        labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_is_deterministic_and_has_every_class() {
        let a = nested_ellipses(3, 3, [1, 32, 32], 3);
        assert_eq!(a.labels, nested_ellipses(3, 3, [1, 32, 32], 3).labels);
        for c in 0..3u8 {
            assert!(a.labels.contains(&c), "class {c} missing");
        }
        assert!(a.image.iter().all(|v| (0.0..=1.0).contains(v)));
        let v = nested_ellipses(1, 1, [16, 32, 32], 4);
        assert!(v.labels.contains(&3));
    }
}
