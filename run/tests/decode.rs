//! Decoding user files within bounds (issue 15, items 7, 8, 10, 13): an image over the memory
//! budget is refused from its header, reading one holds only the decoder's buffer and the floats,
//! a cut file is an error in every format, float pixels must be finite and in [0, 1], and a
//! volume's budget is checked before its data is decompressed.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage};
use msnet_io::fit::InputFit;
use msnet_run::outputs::Outputs;
use msnet_run::preprocess::{ImageBudget, read_model_image};

use common::{msnet_run, scratch, segment, shipped, text};

/// The system allocator, keeping each thread's live and peak heap bytes, so that a test can
/// measure what its own thread's work holds at most (tests run on threads of their own).
struct PeakAllocator;

#[global_allocator]
static GLOBAL: PeakAllocator = PeakAllocator;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(grown: usize, freed: usize) {
    let _ = LIVE.try_with(|live| {
        let now = (live.get() + grown).saturating_sub(freed);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping touches
// only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for PeakAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size(), 0);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size(), 0);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        track(0, layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the moment both blocks may exist.
            track(new_size, 0);
            track(0, layout.size());
        }
        p
    }
}

/// `f()` and the most heap bytes this thread held above its starting level meanwhile.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

/// A smooth RGB picture (compresses well, so large images stay small on disk).
fn picture(w: u32, h: u32) -> RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 200) as u8,
        ])
    })
}

fn encoded(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn reading_an_image_for_the_model_holds_only_the_decoder_buffer_and_the_floats() {
    let dir = scratch("peak");
    let path = dir.join("photo.png");
    let (w, h) = (1000, 800);
    picture(w, h).save(&path).unwrap();
    let pixels = (w * h) as usize;
    let budget = ImageBudget {
        max_image_mib: 1024,
    };
    let (image, peak) =
        peak_during(|| read_model_image(&path, &budget, 3, [112, 112], InputFit::Resize).unwrap());
    assert_eq!((image.channels, image.hw), (3, [800, 1000]));
    assert_eq!(image.input.len(), 3 * 112 * 112);
    // 3 bytes of decoded RGB and 12 of planar floats per pixel; a full-size copy of either
    // (as when the channels were matched before resizing) would show here.
    let per_pixel = peak as f64 / pixels as f64;
    assert!(per_pixel < 16.0, "{per_pixel:.2} bytes per pixel");
    drop(image);

    // Over the budget: refused from the header, before any pixel buffer exists.
    let small = ImageBudget { max_image_mib: 8 };
    let (e, peak) =
        peak_during(|| read_model_image(&path, &small, 3, [112, 112], InputFit::Resize).err());
    let e = format!("{:#}", e.expect("over the budget"));
    assert!(
        e.contains("photo.png") && e.contains("1000×800") && e.contains("over the budget of 8 MiB"),
        "{e}"
    );
    assert!(peak < pixels, "{peak} bytes held to refuse it");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An RGB picture of noise: its PNGs do not compress, the worst case for the encoder's buffers.
fn noise(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32;
    ImageBuffer::from_fn(w, h, |_, _| {
        let mut byte = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        };
        Rgb([byte(), byte(), byte()])
    })
}

#[test]
fn segmenting_an_image_holds_no_more_than_decoding_it_and_stays_within_its_budget() {
    let dir = scratch("segment-peak");
    let path = dir.join("photo.png");
    let (w, h) = (1000, 800);
    noise(w, h).save(&path).unwrap();
    let pixels = (w * h) as usize;
    let mut header = None;
    msnet_io::read_image_checked(&path, |h| {
        header = Some(*h);
        Err("header only".into())
    })
    .unwrap_err();
    let header = header.unwrap();
    let budget = ImageBudget {
        max_image_mib: 1024,
    };
    let outputs = Outputs::named(&dir, "photo");
    let size = [112, 112];
    // What `segment` does with an image, in its order, with a stand-in for the engine: a
    // label map at the model's size.
    let ((), peak) = peak_during(|| {
        let image = read_model_image(&path, &budget, 3, size, InputFit::Resize).unwrap();
        let labels: Vec<u8> = image.input[..size[0] * size[1]]
            .iter()
            .map(|&v| u8::from(v > 0.5) + u8::from(v > 0.8))
            .collect();
        let hw = image.hw;
        let shown = image.into_shown();
        let mask = InputFit::Resize.back(&labels, size, hw);
        outputs.write(&shown, &mask, 3).unwrap();
    });
    let per_pixel = peak as f64 / pixels as f64;
    // The 8-bit copy, the mask and the overlay's encoding of noise: about 17 bytes per pixel;
    // the floats held while the overlay was drawn on them (before it took 8-bit pixels) and
    // the PNG held in memory before its file was written made it 20 and more.
    assert!(per_pixel < 18.0, "{per_pixel:.2} bytes per pixel");
    assert!(
        peak as u64 <= ImageBudget::need(&header),
        "{peak} bytes held, {} budgeted",
        ImageBudget::need(&header)
    );
    let overlay = image::open(&outputs.overlay).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (w, h));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_and_watch_refuse_an_image_over_max_image_mib_and_go_on() {
    let dir = scratch("budget");
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let big = inbox.join("big.png");
    picture(1200, 1000).save(&big).unwrap();
    let small = inbox.join("small.png");
    picture(120, 100).save(&small).unwrap();
    let out = |run: &str| dir.join(run).to_str().unwrap().to_owned();
    let (big_s, small_s) = (big.to_str().unwrap(), small.to_str().unwrap());
    let o = msnet_run(&[
        "segment",
        "--model",
        &shipped(),
        "--out",
        &out("segment-16"),
        "--max-image-mib",
        "16",
        big_s,
        small_s,
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("big.png")
            && t.contains("over the budget of 16 MiB")
            && t.contains("--max-image-mib"),
        "{t}"
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1, "{t}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("small.png"),
        "{t}"
    );
    // The default budget takes it.
    let o = msnet_run(&[
        "segment",
        "--model",
        &shipped(),
        "--out",
        &out("segment"),
        big_s,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let o = msnet_run(&[
        "watch",
        "--model",
        &shipped(),
        "--inbox",
        inbox.to_str().unwrap(),
        "--out",
        &out("watch"),
        "--max-image-mib",
        "16",
        "--once",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("over the budget of 16 MiB"),
        "{}",
        text(&o)
    );
    assert!(!big.exists() && !small.exists(), "{}", text(&o));
    let help = text(&msnet_run(&["segment", "--help"]));
    assert!(
        help.contains("--max-image-mib") && help.contains("MemoryMax=256M"),
        "{help}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_refuses_a_cut_file_of_every_format_naming_it() {
    let dir = scratch("cut");
    for (format, ext) in [
        (ImageFormat::Jpeg, "jpg"),
        (ImageFormat::Png, "png"),
        (ImageFormat::Bmp, "bmp"),
        #[cfg(feature = "tiff")]
        (ImageFormat::Tiff, "tif"),
    ] {
        let bytes = encoded(DynamicImage::ImageRgb8(picture(160, 120)), format);
        let whole = dir.join(format!("whole.{ext}"));
        std::fs::write(&whole, &bytes).unwrap();
        let cut = dir.join(format!("cut.{ext}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let out = dir.join(format!("out-{ext}"));
        let o = segment(&out, &[&whole, &cut]);
        assert!(!o.status.success(), "{ext}: {}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.contains(&format!("whole.{ext}")) && !stdout.contains("cut."),
            "{ext}: {}",
            text(&o)
        );
        assert!(text(&o).contains(&format!("cut.{ext}")), "{}", text(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "tiff")]
#[test]
fn segment_refuses_non_finite_float_pixels_naming_the_file() {
    let dir = scratch("float");
    let out = dir.join("out");
    let (w, h) = (64, 48);
    let mut values: Vec<f32> = (0..w * h * 3).map(|i| (i % 97) as f32 / 96.0).collect();
    let good = dir.join("good.tif");
    let save = |path: &std::path::Path, values: &[f32]| {
        let img: ImageBuffer<Rgb<f32>, Vec<f32>> =
            ImageBuffer::from_raw(w, h, values.to_vec()).unwrap();
        DynamicImage::ImageRgb32F(img).save(path).unwrap();
    };
    save(&good, &values);
    values[3 * (w as usize * 5 + 7)] = f32::NAN;
    let nan = dir.join("nan.tif");
    save(&nan, &values);
    let o = segment(&out, &[&good, &nan]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("good.tif"),
        "{}",
        text(&o)
    );
    let t = text(&o);
    assert!(
        t.contains("nan.tif") && t.contains("NaN") && t.contains("x=7, y=5"),
        "{t}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segment_volume_checks_its_budget_from_the_header_before_the_data() {
    let dir = scratch("volume");
    // The header of a 600³ uint8 volume (the crate's own writer's, resized) without its data:
    // 216 MB of voxels and 864 MB as floats if they were there. They are not, so only a check
    // made before reading the data can answer with the budget rather than "truncated".
    let one = dir.join("one.nii");
    msnet_io::write_volume_u8(&one, [1, 1, 1], &[0]).unwrap();
    let mut header = std::fs::read(&one).unwrap()[..352].to_vec();
    for (i, side) in [(42, 600i16), (44, 600), (46, 600)] {
        header[i..i + 2].copy_from_slice(&side.to_le_bytes());
    }
    let vol = dir.join("scan.nii");
    std::fs::write(&vol, &header).unwrap();
    let labels = dir.join("labels.nii.gz");
    let o = msnet_run(&[
        "segment-volume",
        "--model",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny-3d"),
        "--out",
        labels.to_str().unwrap(),
        "--max-memory-mib",
        "64",
        vol.to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("scan.nii") && t.contains("over the budget"),
        "{t}"
    );
    assert!(!labels.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
