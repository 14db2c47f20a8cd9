//! Augmentation of training batches ([`msnet::config::Augmentation`]): each image of a batch
//! is transformed by draws from a generator seeded with (run seed, iteration, batch slot), a
//! pure function like the batch order, so a resumed run trains on exactly the images an
//! uninterrupted one would, and both engines see the same ones.

use std::borrow::Cow;

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
    } else if a.mirror {
        (false, rng.random_bool(0.5))
    } else {
        (false, false)
    };
    let mut out = s.clone();
    let moved = turns != 0 || flip_h || flip_w;
    if moved {
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
        each_plane(
            &mut out,
            s,
            h * w,
            |d, s| remap(d, s, w, &source),
            |d, s| remap(d, s, w, &source),
        );
    }
    if a.scale > 0.0 || a.rotate > 0.0 {
        let zoom = symmetric(&mut rng, a.scale).exp();
        let angle = symmetric(&mut rng, a.rotate).to_radians();
        let map = Affine::new(h, w, zoom, angle);
        // The zoom reads the turned and flipped sample, or the untouched one when nothing moved.
        let source = if moved {
            Cow::Owned(out.clone())
        } else {
            Cow::Borrowed(s)
        };
        each_plane(
            &mut out,
            &source,
            h * w,
            |d, s| map.nearest(d, s),
            |d, s| map.bilinear(d, s),
        );
    }
    if a.brightness > 0.0 || a.contrast > 0.0 || a.gamma > 0.0 {
        let offset = symmetric(&mut rng, a.brightness);
        let scale = 1.0 + symmetric(&mut rng, a.contrast);
        let power = symmetric(&mut rng, a.gamma).exp();
        for v in &mut out.image {
            *v = (((*v - 0.5) * scale + 0.5 + offset).clamp(0.0, 1.0)).powf(power);
        }
    }
    if a.saturation > 0.0 || a.hue > 0.0 {
        // Drawn after the transforms above, so adding colour leaves their draws unchanged.
        let saturation = symmetric(&mut rng, a.saturation).exp();
        let hue = symmetric(&mut rng, a.hue).to_radians();
        recolour(&mut out, saturation, hue);
    }
    out
}

/// Scales each pixel's chroma (its channels minus their mean) by `saturation` and, for three
/// channels, turns it by `hue` radians about the grey axis; the result is clamped to `[0, 1]`.
fn recolour(s: &mut Sample, saturation: f32, hue: f32) {
    let channels = s.channels;
    if channels < 2 {
        return;
    }
    let plane = s.image.len() / channels;
    // Rodrigues' rotation about k = (1, 1, 1)/√3 of a chroma c ⟂ k: cos·c + sin·(k × c).
    let (sin, cos) = if channels == 3 {
        hue.sin_cos()
    } else {
        (0.0, 1.0)
    };
    let (sin, cos) = (saturation * sin / 3f32.sqrt(), saturation * cos);
    let mut pixel = vec![0.0f32; channels];
    for i in 0..plane {
        for (c, p) in pixel.iter_mut().enumerate() {
            *p = s.image[c * plane + i];
        }
        let grey = pixel.iter().sum::<f32>() / channels as f32;
        for (c, p) in pixel.iter().enumerate() {
            let turn = match (channels, c) {
                (3, 0) => pixel[2] - pixel[1],
                (3, 1) => pixel[0] - pixel[2],
                (3, _) => pixel[1] - pixel[0],
                _ => 0.0,
            };
            s.image[c * plane + i] = (grey + cos * (p - grey) + sin * turn).clamp(0.0, 1.0);
        }
    }
}

/// Uniform in `±amplitude`; 0, without a draw, when the amplitude is 0.
fn symmetric(rng: &mut ChaCha8Rng, amplitude: f32) -> f32 {
    if amplitude > 0.0 {
        rng.random_range(-amplitude..=amplitude)
    } else {
        0.0
    }
}

/// Applies a geometric transform plane by plane (every slice and channel alike): `labels` to
/// each label plane of `src` into `out`, `image` to each image plane.
fn each_plane(
    out: &mut Sample,
    src: &Sample,
    plane: usize,
    labels: impl Fn(&mut [u8], &[u8]),
    image: impl Fn(&mut [f32], &[f32]),
) {
    for (d, s) in out
        .labels
        .chunks_exact_mut(plane)
        .zip(src.labels.chunks_exact(plane))
    {
        labels(d, s);
    }
    for (d, s) in out
        .image
        .chunks_exact_mut(plane)
        .zip(src.image.chunks_exact(plane))
    {
        image(d, s);
    }
}

/// `dst[y·w + x] = src[source(y, x)]` over one plane.
fn remap<T: Copy>(dst: &mut [T], src: &[T], w: usize, source: &impl Fn(usize, usize) -> usize) {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = src[source(i / w, i % w)];
    }
}

/// An in-plane zoom and rotation about the plane's centre, as the map from an output pixel to
/// the point of the source plane it shows. Points outside the source read 0 (background).
struct Affine {
    h: usize,
    w: usize,
    centre: (f32, f32),
    /// The inverse transform's matrix: rotation by −angle, divided by the zoom.
    inverse: [[f32; 2]; 2],
}

impl Affine {
    fn new(h: usize, w: usize, zoom: f32, angle: f32) -> Self {
        let (sin, cos) = angle.sin_cos();
        Self {
            h,
            w,
            centre: ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0),
            inverse: [[cos / zoom, sin / zoom], [-sin / zoom, cos / zoom]],
        }
    }

    /// The source point `(y, x)` of output pixel `i` (row-major).
    fn source(&self, i: usize) -> (f32, f32) {
        let (cy, cx) = self.centre;
        let (dy, dx) = ((i / self.w) as f32 - cy, (i % self.w) as f32 - cx);
        let [[a, b], [c, d]] = self.inverse;
        (a * dy + b * dx + cy, c * dy + d * dx + cx)
    }

    /// Labels: the nearest source pixel, so no label value is invented.
    fn nearest(&self, dst: &mut [u8], src: &[u8]) {
        for (i, d) in dst.iter_mut().enumerate() {
            let (y, x) = self.source(i);
            *d = self.at(src, y.round(), x.round()).unwrap_or(0);
        }
    }

    /// Image: bilinear interpolation between the four nearest source pixels.
    fn bilinear(&self, dst: &mut [f32], src: &[f32]) {
        for (i, d) in dst.iter_mut().enumerate() {
            let (y, x) = self.source(i);
            let (y0, x0) = (y.floor(), x.floor());
            let (fy, fx) = (y - y0, x - x0);
            let v = |dy: f32, dx: f32| self.at(src, y0 + dy, x0 + dx).unwrap_or(0.0);
            *d = (1.0 - fy) * ((1.0 - fx) * v(0.0, 0.0) + fx * v(0.0, 1.0))
                + fy * ((1.0 - fx) * v(1.0, 0.0) + fx * v(1.0, 1.0));
        }
    }

    /// The source value at integral `(y, x)`, if inside the plane.
    fn at<T: Copy>(&self, src: &[T], y: f32, x: f32) -> Option<T> {
        let inside = (0.0..self.h as f32).contains(&y) && (0.0..self.w as f32).contains(&x);
        inside.then(|| src[y as usize * self.w + x as usize])
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
    fn mirror_flips_left_and_right_and_never_up_and_down() {
        let s = sample(3, 4);
        let a = Augmentation {
            mirror: true,
            ..Augmentation::default()
        };
        let mut seen = [false; 2];
        for it in 0..16 {
            let t = augment(&s, &a, 3, it, 0);
            let mirrored = t.image[..4] != s.image[..4];
            seen[mirrored as usize] = true;
            for y in 0..3 {
                for x in 0..4 {
                    let from = y * 4 + if mirrored { 3 - x } else { x };
                    assert_eq!(t.image[y * 4 + x], s.image[from], "row {y} stays row {y}");
                    assert_eq!(t.labels[y * 4 + x], s.labels[from]);
                }
            }
        }
        assert_eq!(seen, [true, true], "16 draws give both sides");
    }

    #[test]
    fn a_quarter_turn_by_the_affine_map_is_the_quarter_turn_permutation() {
        let s = sample(6, 6);
        let turn = Affine::new(6, 6, 1.0, std::f32::consts::FRAC_PI_2);
        let (mut image, mut labels) = (vec![0.0; 36], vec![0; 36]);
        turn.bilinear(&mut image, &s.image[..36]);
        turn.nearest(&mut labels, &s.labels);
        let (mut want_image, mut want_labels) = (vec![0.0; 36], vec![0; 36]);
        let quarter = |y: usize, x: usize| x * 6 + (5 - y);
        remap(&mut want_image, &s.image[..36], 6, &quarter);
        remap(&mut want_labels, &s.labels, 6, &quarter);
        assert_eq!(labels, want_labels);
        for (got, want) in image.iter().zip(&want_image) {
            assert!((got - want).abs() < 1e-5, "{got} against {want}");
        }
        // The identity copies.
        Affine::new(6, 6, 1.0, 0.0).bilinear(&mut image, &s.image[..36]);
        assert_eq!(image, &s.image[..36]);
    }

    #[test]
    fn a_zoom_grows_a_centred_square_and_fills_from_outside_with_background() {
        // A 4×4 square of label 1 and image 1 in the middle of a 16×16 plane.
        let inside = |i: usize| (6..10).contains(&(i / 16)) && (6..10).contains(&(i % 16));
        let labels: Vec<u8> = (0..256).map(|i| u8::from(inside(i))).collect();
        let image: Vec<f32> = labels.iter().map(|&l| f32::from(l)).collect();
        let mut out = vec![9; 256];
        Affine::new(16, 16, 2.0, 0.0).nearest(&mut out, &labels);
        assert_eq!(out.iter().filter(|&&l| l == 1).count(), 64, "side 4 → 8");
        let mut shrunk = vec![9; 256];
        Affine::new(16, 16, 0.5, 0.0).nearest(&mut shrunk, &labels);
        assert_eq!(shrunk[0], 0, "outside the source is background");
        assert_eq!(shrunk.iter().filter(|&&l| l == 1).count(), 4, "side 4 → 2");
        let mut zoomed = vec![9.0; 256];
        Affine::new(16, 16, 0.5, 0.3).bilinear(&mut zoomed, &image);
        assert!(zoomed.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(zoomed[0], 0.0);
    }

    #[test]
    fn zoom_and_rotation_are_seeded_and_move_image_and_labels_together() {
        // Image channel 0 is the label value, so a pixel whose bilinear neighbours agree
        // carries its label with it.
        let labels: Vec<u8> = (0..256)
            .map(|i| ((i / 16) / 6 + (i % 16) / 6) as u8 % 3)
            .collect();
        let s = Sample {
            name: "s".into(),
            channels: 1,
            shape: [1, 16, 16],
            image: labels.iter().map(|&l| f32::from(l) / 2.0).collect(),
            labels,
        };
        let a = Augmentation::parse("scale=0.3,rotate=30").unwrap();
        let t = augment(&s, &a, 4, 7, 1);
        let again = augment(&s, &a, 4, 7, 1);
        assert_eq!((&t.image, &t.labels), (&again.image, &again.labels));
        assert_ne!(t.labels, s.labels);
        let mut agreeing = 0;
        for (v, l) in t.image.iter().zip(&t.labels) {
            let level = (2.0 * v).round();
            if (2.0 * v - level).abs() < 1e-5 {
                assert_eq!(level, f32::from(*l));
                agreeing += 1;
            }
        }
        assert!(agreeing > 128, "{agreeing} pixels away from edges");
    }

    /// One pixel per channel plane: (r, g, b).
    fn pixel(rgb: [f32; 3]) -> Sample {
        Sample {
            name: "p".into(),
            channels: 3,
            shape: [1, 1, 1],
            image: rgb.to_vec(),
            labels: vec![1],
        }
    }

    #[test]
    fn recolouring_keeps_grey_scales_chroma_and_turns_it_about_the_grey_axis() {
        let mut grey = pixel([0.4, 0.4, 0.4]);
        recolour(&mut grey, 1.5, 1.0);
        assert!(
            grey.image.iter().all(|v| (v - 0.4).abs() < 1e-6),
            "grey stays"
        );
        let mut s = pixel([0.6, 0.5, 0.4]);
        recolour(&mut s, 0.5, 0.0);
        for (got, want) in s.image.iter().zip([0.55, 0.5, 0.45]) {
            assert!(
                (got - want).abs() < 1e-6,
                "half the chroma: {got} against {want}"
            );
        }
        // A third of a turn maps r → g → b → r.
        let mut s = pixel([0.6, 0.5, 0.4]);
        recolour(&mut s, 1.0, 2.0 * std::f32::consts::PI / 3.0);
        for (got, want) in s.image.iter().zip([0.4, 0.6, 0.5]) {
            assert!((got - want).abs() < 1e-6, "turned: {got} against {want}");
        }
        let mut strong = pixel([0.9, 0.1, 0.5]);
        recolour(&mut strong, 2.0, 0.3);
        assert!(strong.image.iter().all(|v| (0.0..=1.0).contains(v)));
        let mut one = Sample {
            channels: 1,
            ..pixel([0.3, 0.0, 0.0])
        };
        one.image.truncate(1);
        recolour(&mut one, 2.0, 1.0);
        assert_eq!(one.image, [0.3], "one channel has no colour");
        // Two channels: saturation only, the hue has no axis to turn about.
        let mut two = Sample {
            channels: 2,
            ..pixel([0.6, 0.4, 0.0])
        };
        two.image.truncate(2);
        recolour(&mut two, 0.5, 1.0);
        assert!((two.image[0] - 0.55).abs() < 1e-6 && (two.image[1] - 0.45).abs() < 1e-6);
    }

    #[test]
    fn colour_draws_come_after_the_others_and_leave_labels() {
        let mut s = sample(4, 4);
        s.channels = 3;
        s.shape = [1, 4, 4];
        s.image = (0..48).map(|i| (i % 7) as f32 / 7.0).collect();
        let colour = Augmentation {
            saturation: 0.4,
            hue: 30.0,
            ..Augmentation::DEFAULT
        };
        let plain = augment(&s, &Augmentation::DEFAULT, 5, 3, 1);
        let t = augment(&s, &colour, 5, 3, 1);
        assert_eq!(t.labels, plain.labels, "the same geometric draws");
        assert_ne!(t.image, plain.image);
        // Each pixel's grey is what the default augmentation gave it, unless clamped.
        for i in 0..16 {
            let grey = |x: &Sample| (0..3).map(|c| x.image[c * 16 + i]).sum::<f32>() / 3.0;
            let clamped = (0..3).any(|c| [0.0, 1.0].contains(&t.image[c * 16 + i]));
            if !clamped {
                assert!((grey(&t) - grey(&plain)).abs() < 1e-5);
            }
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
