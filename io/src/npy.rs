//! NumPy `.npy` files of little-endian `f32`, the array format of the golden bundles:
//! `numpy.load` reads them as they are, so anyone can check an engine against them without
//! this project's code. Reading and writing are `ndarray-npy`'s; the arrays are `ndarray`'s.
//!
//! Only what golden bundles need is accepted: dtype `<f4`. A file that claims another dtype,
//! a shape its data does not fill, or more than [`MAX_ELEMENTS`] values is an error naming the
//! file, found before anything of the claimed size is allocated.

use std::path::Path;

use ndarray::{ArrayD, ArrayViewD};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ViewNpyExt, WriteNpyExt};

use super::{IoError, unreadable};

const MAGIC: &[u8] = b"\x93NUMPY";
/// The largest accepted array, in elements (2^28, 1 GiB of `f32`).
pub const MAX_ELEMENTS: usize = 1 << 28;
/// The longest accepted header. NumPy writes a float32 header in about 128 bytes, and switches
/// to a 4-byte length field (format 2.0) only past 64 KiB.
const MAX_HEADER_BYTES: usize = 1 << 16;
/// The largest accepted file: the longest preamble and header, and [`MAX_ELEMENTS`] values.
const MAX_FILE_BYTES: u64 = (12 + MAX_HEADER_BYTES + 4 * MAX_ELEMENTS) as u64;

/// Encodes `array` as `.npy` bytes (C order, format 1.0, header padded to 64 bytes).
fn encode_npy_f32(array: &ArrayViewD<'_, f32>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(128 + 4 * array.len());
    array
        .as_standard_layout()
        .write_npy(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes `array` to `path` atomically as a C-order `.npy` file.
pub fn write_npy_f32(path: &Path, array: &ArrayViewD<'_, f32>) -> Result<(), IoError> {
    let bytes = encode_npy_f32(array).map_err(|reason| IoError::BadBuffer {
        path: path.to_path_buf(),
        reason,
    })?;
    super::write_atomic(path, &bytes)
}

/// Reads an `f32` `.npy` file into an array in standard (C) layout. A file too large to be
/// one is refused by its size, before it is read.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>, IoError> {
    let size = std::fs::metadata(path)
        .map_err(|e| unreadable(path, e))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(unreadable(
            path,
            format!(
                "not an f32 .npy of at most {MAX_ELEMENTS} elements: the file holds {size} bytes"
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
    decode_npy_f32(&bytes).map_err(|reason| unreadable(path, format!("not an f32 .npy: {reason}")))
}

/// Decodes `.npy` bytes (see [`read_npy_f32`]); the error says what is wrong.
pub fn decode_npy_f32(bytes: &[u8]) -> Result<ArrayD<f32>, String> {
    check_preamble(bytes)?;
    let mut data = bytes;
    let header = Header::from_reader(&mut data).map_err(|e| format!("bad header: {e}"))?;
    let descr = header.type_descriptor.to_string();
    if descr != "'<f4'" {
        return Err(format!(
            "dtype {descr}, expected '<f4' (little-endian float32)"
        ));
    }
    let shape = header.shape;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("shape {shape:?} is larger than {MAX_ELEMENTS} elements"))?;
    if data.len() != 4 * count {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, the file holds {}",
            4 * count,
            data.len()
        ));
    }
    // Checked above, so what is left to fail is the data's alignment in memory (NumPy pads
    // the header to 64 bytes; a file that does not cannot be viewed as f32).
    let view = ArrayViewD::<f32>::view_npy(bytes).map_err(|e| e.to_string())?;
    Ok(view.as_standard_layout().into_owned())
}

/// Checks the magic, the format version and that the header fits in the file and under
/// [`MAX_HEADER_BYTES`]. `ndarray-npy` allocates a buffer of the header length the file states
/// before reading it, up to 4 GiB for formats 2.0 and 3.0, so a 12-byte file could otherwise
/// ask for that much.
fn check_preamble(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (start, len) = match bytes[6] {
        1 => (10, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    if start + len > bytes.len() {
        return Err(format!(
            "the header ({len} bytes) runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    if len > MAX_HEADER_BYTES {
        return Err(format!(
            "the header is {len} bytes long, more than {MAX_HEADER_BYTES}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, IxDyn, ShapeBuilder};

    fn array(shape: &[usize], data: &[f32]) -> ArrayD<f32> {
        Array::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap()
    }

    fn encode(shape: &[usize], data: &[f32]) -> Vec<u8> {
        encode_npy_f32(&array(shape, data).view()).unwrap()
    }

    /// A format 1.0 file whose header is `dict`, followed by `data_bytes` zero bytes.
    fn with_header(dict: &str, data_bytes: usize) -> Vec<u8> {
        let mut header = dict.to_string();
        let unpadded = MAGIC.len() + 4 + header.len() + 1;
        header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
        header.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_bytes, 0);
        out
    }

    #[test]
    fn roundtrip_keeps_shape_and_bits() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 3.0).collect();
        for shape in [vec![24], vec![2, 3, 4], vec![1, 2, 3, 2, 2]] {
            let bytes = encode(&shape, &data);
            assert_eq!(
                (bytes.len() - 4 * data.len()) % 64,
                0,
                "header is padded to 64"
            );
            let a = decode_npy_f32(&bytes).unwrap();
            assert_eq!(a.shape(), &shape[..]);
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn header_matches_numpy() {
        let bytes = encode(&[1, 3], &[0.0; 3]);
        let header = std::str::from_utf8(&bytes[10..bytes.len() - 12]).unwrap();
        // NumPy writes a trailing `, ` before the `}`; ndarray-npy does not, and both parse.
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3)}"),
            "{header}"
        );
        assert!(header.ends_with('\n'));
        // A 1-tuple keeps its trailing comma, as Python needs.
        let bytes = encode(&[3], &[0.0; 3]);
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (3,)"));
    }

    #[test]
    fn fortran_order_is_read_and_written_in_c_order() {
        let c = array(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let f =
            Array::from_shape_vec(IxDyn(&[2, 3]).f(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]).unwrap();
        assert_eq!(c, f);
        let mut fortran = Vec::new();
        f.write_npy(&mut fortran).unwrap();
        assert!(String::from_utf8_lossy(&fortran).contains("'fortran_order': True"));
        let read = decode_npy_f32(&fortran).unwrap();
        assert_eq!(read, c);
        assert_eq!(read.as_slice(), c.as_slice(), "standard layout");
        // Written back, it is C order, as golden bundles are.
        assert_eq!(
            encode_npy_f32(&f.view()).unwrap(),
            encode(&[2, 3], c.as_slice().unwrap())
        );
    }

    #[test]
    fn bad_files_are_errors() {
        let good = encode(&[2, 2], &[1.0; 4]);
        let truncated = &good[..good.len() - 1];
        assert!(
            decode_npy_f32(truncated)
                .unwrap_err()
                .contains("needs 16 bytes")
        );
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode_npy_f32(&extra).unwrap_err().contains("holds 17"));
        assert!(
            decode_npy_f32(b"PK\x03\x04 not npy")
                .unwrap_err()
                .contains("magic")
        );
        let mut f8 = good.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(decode_npy_f32(&f8).unwrap_err().contains("dtype"));
        let mut big_endian = good.clone();
        big_endian[at] = b'>';
        assert!(decode_npy_f32(&big_endian).unwrap_err().contains("dtype"));
        let mut long_header = good.clone();
        long_header[8] = 0xff;
        long_header[9] = 0xff;
        assert!(
            decode_npy_f32(&long_header)
                .unwrap_err()
                .contains("past the end")
        );
        let mut garbled = good.clone();
        let at = garbled.windows(7).position(|w| w == b"'shape'").unwrap();
        garbled[at + 1] = b'?';
        assert!(decode_npy_f32(&garbled).unwrap_err().contains("bad header"));

        let dir = msnet::fsutil::scratch_dir("npy");
        let path = dir.join("x.npy");
        std::fs::write(&path, truncated).unwrap();
        let err = read_npy_f32(&path).unwrap_err().to_string();
        assert!(
            err.contains("x.npy") && err.contains("bytes of data"),
            "{err}"
        );
    }

    #[test]
    fn hostile_sizes_are_refused_before_allocating() {
        // 10^12 elements claimed by a 128-byte file: refused from the header, before
        // ndarray-npy would allocate 4 TB for it.
        let huge = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            0,
        );
        let e = decode_npy_f32(&huge).unwrap_err();
        assert!(e.contains("larger than 268435456 elements"), "{e}");
        // A shape whose element count overflows usize.
        let overflow = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            0,
        );
        assert!(
            decode_npy_f32(&overflow)
                .unwrap_err()
                .contains("larger than")
        );
        // Within the limit but not in the file.
        let short = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4096, 4096), }",
            16,
        );
        let e = decode_npy_f32(&short).unwrap_err();
        assert!(
            e.contains("needs 67108864 bytes of data, the file holds 16"),
            "{e}"
        );
        // A format 2.0 preamble claiming a 4 GiB header in a 12-byte file.
        let mut v2 = MAGIC.to_vec();
        v2.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode_npy_f32(&v2).unwrap_err().contains("past the end"));
        // A header that is in the file but longer than any float32 header.
        let mut long = MAGIC.to_vec();
        long.extend_from_slice(&[2, 0]);
        long.extend_from_slice(&((MAX_HEADER_BYTES as u32) + 4).to_le_bytes());
        long.resize(long.len() + MAX_HEADER_BYTES + 4, b' ');
        assert!(
            decode_npy_f32(&long)
                .unwrap_err()
                .contains("more than 65536")
        );

        // A file larger than any accepted array is refused by its size, unread (sparse here).
        let dir = msnet::fsutil::scratch_dir("npy-huge");
        let path = dir.join("huge.npy");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let e = read_npy_f32(&path).unwrap_err().to_string();
        assert!(
            e.contains("huge.npy") && e.contains("at most 268435456"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
