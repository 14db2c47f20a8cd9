//! NumPy `.npy` files of little-endian `f32` (format version 1.0), the array format of the
//! golden bundles: `numpy.load` reads them as they are, so anyone can check an engine against
//! them without this project's code.
//!
//! Only what golden bundles need is accepted: dtype `<f4`, C order. A file that claims another
//! dtype, Fortran order, or a shape its data does not fill is an error naming the file.

use std::path::Path;

use super::{IoError, unreadable};

const MAGIC: &[u8] = b"\x93NUMPY";
/// The largest accepted array, in elements (2^28, 1 GiB of `f32`).
const MAX_ELEMENTS: usize = 1 << 28;

/// Encodes a C-order `f32` array of `shape` as `.npy` bytes. `data.len()` must equal the
/// product of `shape`.
pub fn encode_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy data does not fill its shape"
    );
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A 1-tuple needs its trailing comma in Python syntax.
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');

    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes [`encode_npy_f32`] to `path` atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), IoError> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(IoError::BadBuffer {
            path: path.to_path_buf(),
            reason: format!("{} values do not fill shape {shape:?}", data.len()),
        });
    }
    super::write_atomic(path, &encode_npy_f32(shape, data))
}

/// Reads an `f32` `.npy` file: its shape and its values in C order.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), IoError> {
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, e))?;
    decode_npy_f32(&bytes).map_err(|reason| unreadable(path, format!("not an f32 .npy: {reason}")))
}

/// Decodes `.npy` bytes (see [`read_npy_f32`]); the error says what is wrong.
pub fn decode_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing the \\x93NUMPY magic".into());
    }
    let (header_start, header_len) = match bytes[6] {
        1 => (10usize, u16::from_le_bytes([bytes[8], bytes[9]]) as usize),
        2 | 3 if bytes.len() >= 12 => (
            12,
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
        ),
        v => return Err(format!("unsupported format version {v}")),
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or("the header runs past the end of the file")?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| "the header is not text")?;

    let descr = dict_value(header, "descr").ok_or("the header has no 'descr'")?;
    if descr.trim_matches(['\'', '"']) != "<f4" {
        return Err(format!(
            "dtype {descr}, expected '<f4' (little-endian float32)"
        ));
    }
    let order = dict_value(header, "fortran_order").ok_or("the header has no 'fortran_order'")?;
    if order != "False" {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = parse_shape(header)?;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("shape {shape:?} is larger than {MAX_ELEMENTS} elements"))?;
    let data = &bytes[data_start..];
    if data.len() != 4 * count {
        return Err(format!(
            "shape {shape:?} needs {} bytes of data, the file holds {}",
            4 * count,
            data.len()
        ));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((shape, values))
}

/// The raw text of a scalar entry `'key': value` of the header dict.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?;
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim())
}

fn parse_shape(header: &str) -> Result<Vec<usize>, String> {
    let start = header.find("'shape'").ok_or("the header has no 'shape'")?;
    let rest = &header[start..];
    let open = rest.find('(').ok_or("'shape' is not a tuple")?;
    let close = rest.find(')').ok_or("'shape' is not a tuple")?;
    rest[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("bad dimension `{s}` in 'shape'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_shape_and_bits() {
        let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 3.0).collect();
        for shape in [vec![24], vec![2, 3, 4], vec![1, 2, 3, 2, 2]] {
            let bytes = encode_npy_f32(&shape, &data);
            assert_eq!(
                (bytes.len() - 4 * data.len()) % 64,
                0,
                "header is padded to 64"
            );
            let (s, d) = decode_npy_f32(&bytes).unwrap();
            assert_eq!(s, shape);
            assert_eq!(
                d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn header_matches_numpy() {
        let bytes = encode_npy_f32(&[1, 3], &[0.0; 3]);
        let header = std::str::from_utf8(&bytes[10..bytes.len() - 12]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }"));
        assert!(header.ends_with('\n'));
    }

    #[test]
    fn bad_files_are_errors() {
        let good = encode_npy_f32(&[2, 2], &[1.0; 4]);
        let truncated = &good[..good.len() - 1];
        assert!(
            decode_npy_f32(truncated)
                .unwrap_err()
                .contains("needs 16 bytes")
        );
        assert!(
            decode_npy_f32(b"PK\x03\x04 not npy")
                .unwrap_err()
                .contains("magic")
        );
        let mut f8 = good.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(decode_npy_f32(&f8).unwrap_err().contains("dtype"));
        let mut long_header = good.clone();
        long_header[8] = 0xff;
        long_header[9] = 0xff;
        assert!(
            decode_npy_f32(&long_header)
                .unwrap_err()
                .contains("past the end")
        );

        let dir = msnet::fsutil::scratch_dir("npy");
        let path = dir.join("x.npy");
        std::fs::write(&path, truncated).unwrap();
        let err = read_npy_f32(&path).unwrap_err().to_string();
        assert!(
            err.contains("x.npy") && err.contains("bytes of data"),
            "{err}"
        );
    }
}
