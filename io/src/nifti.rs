//! NIfTI-1 volume I/O (single-file `.nii`, optionally gzip-compressed `.nii.gz`).
//!
//! Conventions:
//! - a volume is returned as `([d, h, w], voxels)` with `voxels` in C order `[D][H][W]`; this is
//!   exactly the NIfTI byte stream for a header `dim = [3, W, H, D]` (x varies fastest), so no
//!   transposition happens, and the acdc_subset files read back as their original arrays;
//! - 4D to 7D headers are accepted when every dimension past the third is 1;
//! - datatypes uint8, int8, int16, uint16, int32, float32 and float64 are converted; the header's
//!   `scl_slope` / `scl_inter` are applied when the slope is set and not the identity;
//! - compression is detected from the gzip magic bytes, not the file name.
//!
//! The header is parsed with the `nifti` crate ([`nifti::NiftiHeader`], which handles byte order);
//! the voxel stream is read here so that a short file or a cut gzip stream is reported as
//! [`IoError::TruncatedNifti`] with the expected and actual byte counts, and so that nothing is
//! allocated before the header's size has been checked against [`MAX_VOLUME_VOXELS`].
//!
//! The voxels are converted as they stream in, so reading holds the result and nothing of its
//! size besides; [`read_volume_shape`] reads the header alone, for a caller that must check a
//! memory budget before the data is decompressed.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use ::nifti::{Endianness, NiftiHeader};
use flate2::Compression;
use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::{IoError, MAX_VOLUME_VOXELS, write_atomic};

/// Bytes in a NIfTI-1 header.
const HEADER_BYTES: usize = 348;
/// Where our writer puts the voxels: header + the 4-byte "no extensions" flag.
const VOX_OFFSET: usize = 352;
/// The largest extension block we are willing to skip before the voxels.
const MAX_VOX_OFFSET: usize = 1 << 24;

/// The volume name of a NIfTI file name (without `.nii.gz` or `.nii`), if it is one.
pub fn volume_name(file: &str) -> Option<&str> {
    file.strip_suffix(".nii.gz")
        .or_else(|| file.strip_suffix(".nii"))
}

/// Reads a 3D volume as `f32`: `([d, h, w], voxels)` (see the module docs).
pub fn read_volume_f32(path: &Path) -> Result<([usize; 3], Vec<f32>), IoError> {
    let (reader, layout) = open_volume(path)?;
    let mut voxels = reserve(path, layout.voxels())?;
    read_voxels(path, reader, &layout, |bytes| {
        match (layout.dtype, layout.scaling) {
            // The common case: copy without going through f64.
            (Dtype::F32, None) => voxels.extend(bytes.chunks_exact(4).map(|b| {
                let b = [b[0], b[1], b[2], b[3]];
                if layout.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                }
            })),
            _ => voxels.extend(layout.values(bytes).map(|v| v as f32)),
        }
        Ok(())
    })?;
    Ok((layout.shape, voxels))
}

/// Reads a 3D label volume as `u8`: `([d, h, w], labels)`.
///
/// Any datatype is accepted as long as every (scaled) value is an integer in `0..=255`;
/// otherwise [`IoError::BadNifti`] names the first offending voxel.
pub fn read_volume_u8(path: &Path) -> Result<([usize; 3], Vec<u8>), IoError> {
    let (reader, layout) = open_volume(path)?;
    let mut labels = reserve(path, layout.voxels())?;
    read_voxels(path, reader, &layout, |bytes| {
        if layout.dtype == Dtype::U8 && layout.scaling.is_none() {
            labels.extend_from_slice(bytes);
            return Ok(());
        }
        for v in layout.values(bytes) {
            if !(0.0..=255.0).contains(&v) || v.fract() != 0.0 {
                return Err(bad(
                    path,
                    format!(
                        "voxel {} has value {v}, not a label in 0..=255",
                        labels.len()
                    ),
                ));
            }
            labels.push(v as u8);
        }
        Ok(())
    })?;
    Ok((layout.shape, labels))
}

/// The `[d, h, w]` shape of a volume from its header alone, validated as the readers validate
/// it, without reading or decompressing the voxel data.
pub fn read_volume_shape(path: &Path) -> Result<[usize; 3], IoError> {
    Ok(open_volume(path)?.1.shape)
}

/// Writes a `uint8` label volume `[d, h, w]` (C order) as NIfTI-1, atomically.
///
/// The header has `dim = [3, W, H, D]`, pixdim 1, an identity qform and sform, and no scaling.
/// The file is gzip-compressed when its name ends in `.gz` (use `.nii.gz`), plain otherwise,
/// because other tools choose the decompressor from the extension.
pub fn write_volume_u8(path: &Path, shape: [usize; 3], labels: &[u8]) -> Result<(), IoError> {
    write_volume(path, shape, Dtype::U8, labels)
}

/// Writes a `float32` volume `[d, h, w]` (C order) as NIfTI-1, atomically; same header
/// conventions as [`write_volume_u8`] (useful for probability maps and test fixtures).
pub fn write_volume_f32(path: &Path, shape: [usize; 3], voxels: &[f32]) -> Result<(), IoError> {
    let bytes: Vec<u8> = voxels.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_volume(path, shape, Dtype::F32, &bytes)
}

/// The voxel types this module converts, with their NIfTI codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    U8,
    I8,
    I16,
    U16,
    I32,
    F32,
    F64,
}

impl Dtype {
    fn from_code(code: i16) -> Option<Dtype> {
        Some(match code {
            2 => Dtype::U8,
            256 => Dtype::I8,
            4 => Dtype::I16,
            512 => Dtype::U16,
            8 => Dtype::I32,
            16 => Dtype::F32,
            64 => Dtype::F64,
            _ => return None,
        })
    }

    fn code(self) -> i16 {
        match self {
            Dtype::U8 => 2,
            Dtype::I8 => 256,
            Dtype::I16 => 4,
            Dtype::U16 => 512,
            Dtype::I32 => 8,
            Dtype::F32 => 16,
            Dtype::F64 => 64,
        }
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// Decodes one voxel from exactly `size()` bytes.
    fn decode(self, b: &[u8], little: bool) -> f64 {
        macro_rules! num {
            ($t:ty, $n:literal) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                f64::from(if little {
                    <$t>::from_le_bytes(a)
                } else {
                    <$t>::from_be_bytes(a)
                })
            }};
        }
        match self {
            Dtype::U8 => f64::from(b[0]),
            Dtype::I8 => f64::from(b[0] as i8),
            Dtype::I16 => num!(i16, 2),
            Dtype::U16 => num!(u16, 2),
            Dtype::I32 => num!(i32, 4),
            Dtype::F32 => num!(f32, 4),
            Dtype::F64 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[..8]);
                if little {
                    f64::from_le_bytes(a)
                } else {
                    f64::from_be_bytes(a)
                }
            }
        }
    }
}

/// What a validated header says about the voxel stream.
struct Layout {
    shape: [usize; 3],
    dtype: Dtype,
    little: bool,
    /// `(slope, intercept)` when the header asks for a non-identity scaling.
    scaling: Option<(f64, f64)>,
    vox_offset: usize,
}

impl Layout {
    fn voxels(&self) -> usize {
        self.shape.iter().product()
    }

    /// The voxels held in `bytes` (whole voxels, in file order) as scaled `f64`.
    fn values<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = f64> + 'b {
        let (slope, inter) = self.scaling.unwrap_or((1.0, 0.0));
        let (dtype, little) = (self.dtype, self.little);
        bytes
            .chunks_exact(dtype.size())
            .map(move |b| dtype.decode(b, little) * slope + inter)
    }
}

/// Room for `n` values, reserved at once so the result never reallocates (and so never holds
/// two copies) while it fills; a failed reservation is an error naming the file.
fn reserve<T>(path: &Path, n: usize) -> Result<Vec<T>, IoError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        bad(
            path,
            format!("cannot allocate {n} voxels of {} bytes", size_of::<T>()),
        )
    })?;
    Ok(v)
}

fn bad(path: &Path, reason: impl Into<String>) -> IoError {
    IoError::BadNifti {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens `path`, decompressing when it starts with the gzip magic bytes.
fn open(path: &Path) -> Result<Box<dyn Read>, IoError> {
    let file = File::open(path).map_err(|e| super::unreadable(path, e))?;
    let mut buf = BufReader::new(file);
    let head = buf.fill_buf().map_err(|e| super::unreadable(path, e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(buf)))
    } else {
        Ok(Box::new(buf))
    }
}

/// Bytes handed to the converter at a time: whole voxels of every type.
const CHUNK: usize = 1 << 16;

/// Reads up to `buf.len()` bytes; returns how many arrived and the error that stopped it early,
/// if any. Keeping the partial count lets truncation errors say how much data there was.
fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

/// Opens `path` and reads and validates its header: the reader is left at byte 348.
fn open_volume(path: &Path) -> Result<(Box<dyn Read>, Layout), IoError> {
    let mut reader = open(path)?;
    let mut head = [0u8; HEADER_BYTES];
    let (got, err) = read_up_to(&mut *reader, &mut head);
    if got < HEADER_BYTES {
        return Err(match err {
            Some(e) if e.kind() != io::ErrorKind::UnexpectedEof => {
                bad(path, format!("cannot decode the header: {e}"))
            }
            _ => bad(
                path,
                format!("the file ends after {got} bytes, inside the 348-byte header"),
            ),
        });
    }
    let header = NiftiHeader::from_reader(&head[..]).map_err(|e| bad(path, e.to_string()))?;
    let (shape, dtype, vox_offset) = check_header(path, &header)?;
    let (slope, inter) = (f64::from(header.scl_slope), f64::from(header.scl_inter));
    let inter = if inter.is_finite() { inter } else { 0.0 };
    let scaling = (slope != 0.0 && slope.is_finite() && (slope, inter) != (1.0, 0.0))
        .then_some((slope, inter));
    let layout = Layout {
        shape,
        dtype,
        little: header.endianness == Endianness::Little,
        scaling,
        vox_offset,
    };
    Ok((reader, layout))
}

/// Streams exactly the voxel bytes `layout` promises to `take`, in pieces of whole voxels, after
/// skipping the extension block; a short or corrupt stream is an error naming the file.
fn read_voxels(
    path: &Path,
    mut reader: Box<dyn Read>,
    layout: &Layout,
    mut take: impl FnMut(&[u8]) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let n_bytes = layout.voxels() * layout.dtype.size();
    let extension = (layout.vox_offset - HEADER_BYTES) as u64;
    let skipped = io::copy(&mut (&mut reader).take(extension), &mut io::sink());
    let mut buf = vec![0u8; CHUNK.min(n_bytes)];
    let (mut got, mut err) = (0, None);
    if matches!(skipped, Ok(n) if n == extension) {
        while got < n_bytes {
            let want = CHUNK.min(n_bytes - got);
            let (n, e) = read_up_to(&mut *reader, &mut buf[..want]);
            got += n;
            if n < want {
                err = e;
                break;
            }
            take(&buf[..want])?;
        }
    } else {
        err = skipped.err();
    }
    if got < n_bytes {
        return Err(match err {
            Some(e) if e.kind() != io::ErrorKind::UnexpectedEof => bad(
                path,
                format!("corrupt data after {got} of {n_bytes} voxel bytes: {e}"),
            ),
            _ => IoError::TruncatedNifti {
                path: path.to_path_buf(),
                expected_bytes: n_bytes as u64,
                got: got as u64,
            },
        });
    }
    // Read on (bounded) so that gzip checks its CRC and length trailer: a cut or corrupted
    // trailer means the file is damaged even though the voxel count was reached.
    io::copy(&mut reader.take(1 << 20), &mut io::sink()).map_err(|e| {
        bad(
            path,
            format!("corrupt compressed stream after the voxel data: {e}"),
        )
    })?;
    Ok(())
}

/// Checks the header fields we rely on: returns `([d, h, w], dtype, vox_offset)`.
fn check_header(path: &Path, h: &NiftiHeader) -> Result<([usize; 3], Dtype, usize), IoError> {
    if h.sizeof_hdr != HEADER_BYTES as i32 {
        return Err(bad(
            path,
            format!(
                "sizeof_hdr is {}, not 348 (NIfTI-2 and Analyze are not supported)",
                h.sizeof_hdr
            ),
        ));
    }
    if &h.magic == b"ni1\0" {
        return Err(bad(
            path,
            "a .hdr/.img pair is not supported; convert it to a single .nii",
        ));
    }
    if &h.magic != b"n+1\0" {
        return Err(bad(path, format!("magic is {:?}, not \"n+1\"", h.magic)));
    }
    let rank = usize::from(h.dim[0]);
    if !(1..=7).contains(&rank) {
        return Err(bad(path, format!("dim[0] is {rank}, not in 1..=7")));
    }
    let dims: Vec<usize> = (1..=7)
        .map(|i| if i <= rank { usize::from(h.dim[i]) } else { 1 })
        .collect();
    if dims.contains(&0) || dims[3..].iter().any(|&d| d != 1) {
        return Err(bad(
            path,
            format!("dim {:?} is not a non-empty 3D volume", &h.dim[..=rank]),
        ));
    }
    let voxels = dims[..3].iter().product::<usize>();
    if voxels > MAX_VOLUME_VOXELS {
        return Err(bad(
            path,
            format!("{voxels} voxels exceed the limit of {MAX_VOLUME_VOXELS}"),
        ));
    }
    let dtype = Dtype::from_code(h.datatype).ok_or_else(|| {
        bad(
            path,
            format!(
                "datatype code {} is not supported (uint8, int8, int16, uint16, int32, float32, float64 are)",
                h.datatype
            ),
        )
    })?;
    let off = h.vox_offset;
    if !(off.is_finite()
        && off.fract() == 0.0
        && off >= HEADER_BYTES as f32
        && off <= MAX_VOX_OFFSET as f32)
    {
        return Err(bad(
            path,
            format!("vox_offset {off} is not a valid data offset"),
        ));
    }
    Ok(([dims[2], dims[1], dims[0]], dtype, off as usize))
}

/// Builds a header for `[d, h, w]` voxels of `dtype` (byte order chosen for tests of the reader).
fn header_bytes(shape: [usize; 3], dtype: Dtype, little: bool) -> Vec<u8> {
    let mut b = vec![0u8; VOX_OFFSET];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    let i16b = |v: i16| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let i32b = |v: i32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let f32b = |v: f32| {
        if little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    };
    let [d, h, w] = shape;
    put(0, &i32b(HEADER_BYTES as i32));
    put(38, b"r"); // "regular": legacy Analyze field that some readers still check
    let dim = [3, w as i16, h as i16, d as i16, 1, 1, 1, 1];
    for (i, v) in dim.into_iter().enumerate() {
        put(40 + 2 * i, &i16b(v));
    }
    put(70, &i16b(dtype.code()));
    put(72, &i16b((dtype.size() * 8) as i16));
    for i in 0..8 {
        put(76 + 4 * i, &f32b(1.0)); // pixdim[0] = qfac = 1, spacing 1 (unknown units)
    }
    put(108, &f32b(VOX_OFFSET as f32));
    put(112, &f32b(1.0)); // scl_slope 1, scl_inter 0: values are stored as is
    put(148, b"msnet");
    put(252, &i16b(1)); // qform_code: quaternion 0 and zero offsets = identity
    put(254, &i16b(1)); // sform_code: srow rows below = identity
    for (row, at) in [(0, 280), (1, 296), (2, 312)] {
        put(at + 4 * row, &f32b(1.0));
    }
    put(344, b"n+1\0");
    b
}

fn write_volume(path: &Path, shape: [usize; 3], dtype: Dtype, data: &[u8]) -> Result<(), IoError> {
    let bad_buffer = |reason: String| IoError::BadBuffer {
        path: path.to_path_buf(),
        reason,
    };
    if shape.iter().any(|&n| n == 0 || n > i16::MAX as usize) {
        return Err(bad_buffer(format!(
            "shape {shape:?}: each side must be in 1..={}",
            i16::MAX
        )));
    }
    let expected = shape.iter().product::<usize>() * dtype.size();
    if data.len() != expected {
        return Err(bad_buffer(format!(
            "{} bytes given for shape {shape:?} ({expected} expected)",
            data.len()
        )));
    }
    let mut file = header_bytes(shape, dtype, true);
    file.extend_from_slice(data);
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let bytes = if gz { gzip(&file) } else { Ok(file) };
    let bytes = bytes.map_err(|e| IoError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    enc.write_all(bytes)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::nifti::{NiftiObject, ReaderOptions};
    use msnet::fsutil::scratch_dir as test_dir;
    use std::fs;

    fn ramp(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn u8_roundtrip_gz_and_plain_with_dims() {
        let dir = test_dir("nii-rt");
        let shape = [3, 5, 4];
        let labels = ramp(60);
        for name in ["v.nii.gz", "v.nii"] {
            let p = dir.join(name);
            write_volume_u8(&p, shape, &labels).unwrap();
            assert_eq!(
                read_volume_u8(&p).unwrap(),
                (shape, labels.clone()),
                "{name}"
            );
            let (s, f) = read_volume_f32(&p).unwrap();
            assert_eq!(s, shape);
            assert_eq!(f[59], f32::from(labels[59]));
            // The `nifti` crate must accept what we write, with dim = [3, W, H, D].
            let obj = ReaderOptions::new().read_file(&p).unwrap();
            assert_eq!(&obj.header().dim[..4], &[3, 4, 5, 3]);
            assert_eq!(obj.header().datatype, 2);
            assert_eq!(obj.volume().raw_data(), &labels[..]);
        }
        let gz = fs::read(dir.join("v.nii.gz")).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "a .gz name must give a gzip file");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "temp files left behind"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn f32_roundtrip_and_conversions() {
        let dir = test_dir("nii-types");
        let p = dir.join("f.nii.gz");
        let v: Vec<f32> = (0..24).map(|i| i as f32 / 23.0).collect();
        write_volume_f32(&p, [2, 3, 4], &v).unwrap();
        assert_eq!(read_volume_f32(&p).unwrap(), ([2, 3, 4], v));
        // Float labels that are whole numbers read as u8; others are refused.
        write_volume_f32(&p, [1, 1, 3], &[0.0, 3.0, 2.0]).unwrap();
        assert_eq!(read_volume_u8(&p).unwrap().1, vec![0, 3, 2]);
        write_volume_f32(&p, [1, 1, 2], &[0.0, 0.5]).unwrap();
        let e = read_volume_u8(&p).unwrap_err();
        assert!(e.to_string().contains("voxel 1 has value 0.5"), "{e}");

        // A big-endian int16 file with scaling: exercises byte order and scl_slope.
        let mut bytes = header_bytes([1, 1, 3], Dtype::I16, false);
        bytes[112..116].copy_from_slice(&2.0f32.to_be_bytes());
        bytes[116..120].copy_from_slice(&1.0f32.to_be_bytes());
        for v in [-1i16, 0, 300] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let p = dir.join("be.nii");
        fs::write(&p, &bytes).unwrap();
        assert_eq!(
            read_volume_f32(&p).unwrap(),
            ([1, 1, 3], vec![-1.0, 1.0, 601.0])
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_gz_and_short_files_are_errors_not_panics() {
        let dir = test_dir("nii-trunc");
        let p = dir.join("full.nii.gz");
        let labels = ramp(20 * 30 * 40);
        write_volume_u8(&p, [20, 30, 40], &labels).unwrap();
        let gz = fs::read(&p).unwrap();
        let cut = dir.join("cut.nii.gz");
        for keep in [gz.len() - 4, gz.len() * 2 / 3, gz.len() / 3, 40, 10, 0] {
            fs::write(&cut, &gz[..keep]).unwrap();
            let e = read_volume_u8(&cut).unwrap_err();
            assert!(
                matches!(e, IoError::TruncatedNifti { .. } | IoError::BadNifti { .. }),
                "{keep}: {e:?}"
            );
            assert!(e.to_string().contains("cut.nii.gz"), "{e}");
        }
        // A plain file cut inside the voxels gives the exact counts.
        let plain = dir.join("short.nii");
        let mut bytes = header_bytes([2, 2, 2], Dtype::F32, true);
        bytes.extend_from_slice(&[0u8; 20]);
        fs::write(&plain, &bytes).unwrap();
        let e = read_volume_f32(&plain).unwrap_err();
        assert!(
            matches!(
                e,
                IoError::TruncatedNifti {
                    expected_bytes: 32,
                    got: 20,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("short.nii") && msg.contains("32") && msg.contains("20"),
            "{msg}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn voxels_convert_across_stream_chunks() {
        let dir = test_dir("nii-chunks");
        let p = dir.join("big.nii.gz");
        // 128 000 bytes of float32: several read chunks, with labels checked across them.
        let shape = [20, 40, 40];
        let mut v: Vec<f32> = (0..32_000).map(|i| (i % 7) as f32).collect();
        write_volume_f32(&p, shape, &v).unwrap();
        assert_eq!(read_volume_f32(&p).unwrap(), (shape, v.clone()));
        assert_eq!(read_volume_u8(&p).unwrap().1[31_999], 2);
        v[20_000] = 0.5;
        write_volume_f32(&p, shape, &v).unwrap();
        let e = read_volume_u8(&p).unwrap_err().to_string();
        assert!(e.contains("voxel 20000 has value 0.5"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shape_comes_from_the_header_without_the_data() {
        let dir = test_dir("nii-shape");
        let p = dir.join("head-only.nii.gz");
        // A header promising 600³ uint8 voxels and no data at all.
        fs::write(
            &p,
            gzip(&header_bytes([600, 600, 600], Dtype::U8, true)).unwrap(),
        )
        .unwrap();
        assert_eq!(read_volume_shape(&p).unwrap(), [600, 600, 600]);
        let e = read_volume_u8(&p).unwrap_err();
        assert!(
            matches!(
                e,
                IoError::TruncatedNifti {
                    expected_bytes: 216_000_000,
                    got: 0,
                    ..
                }
            ),
            "{e:?}"
        );
        fs::write(&p, b"hello").unwrap();
        let e = read_volume_shape(&p).unwrap_err().to_string();
        assert!(
            e.contains("head-only.nii.gz") && e.contains("348-byte header"),
            "{e}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_headers_are_explained() {
        let dir = test_dir("nii-bad");
        let p = dir.join("x.nii");
        let mut bytes = header_bytes([1, 1, 1], Dtype::U8, true);
        bytes[70..72].copy_from_slice(&1024i16.to_le_bytes()); // int64
        bytes.push(0);
        fs::write(&p, &bytes).unwrap();
        let e = read_volume_u8(&p).unwrap_err().to_string();
        assert!(e.contains("datatype code 1024"), "{e}");

        let mut bytes = header_bytes([2, 2, 2], Dtype::U8, true);
        bytes[40..42].copy_from_slice(&4i16.to_le_bytes());
        bytes[48..50].copy_from_slice(&3i16.to_le_bytes()); // 3 time points
        fs::write(&p, &bytes).unwrap();
        let e = read_volume_u8(&p).unwrap_err().to_string();
        assert!(e.contains("not a non-empty 3D volume"), "{e}");

        fs::write(&p, b"hello").unwrap();
        let e = read_volume_u8(&p).unwrap_err().to_string();
        assert!(e.contains("348-byte header"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writer_rejects_inconsistent_buffers() {
        let dir = test_dir("nii-w");
        let e = write_volume_u8(&dir.join("a.nii.gz"), [2, 2, 2], &[0; 7]).unwrap_err();
        assert!(matches!(e, IoError::BadBuffer { .. }), "{e:?}");
        let e = write_volume_u8(&dir.join("a.nii.gz"), [0, 2, 2], &[]).unwrap_err();
        assert!(matches!(e, IoError::BadBuffer { .. }), "{e:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
