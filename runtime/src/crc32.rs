//! CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`), the checksum of plan files and of the
//! fundus-camera frames.
//!
//! Eight bytes a step ("slicing-by-8", eight 256-entry tables, 8 KiB of read-only data): a
//! plan is checked once at load, and on a device the byte-at-a-time loop was the largest part
//! of loading (one table lookup per byte, each waiting on the previous). The tables are built
//! at compile time, so nothing runs or allocates at start-up. The byte-at-a-time twin is in
//! the tests, which compare the two.

/// `TABLES[0]` is the classic byte table; `TABLES[k][b]` is the CRC of byte `b` followed by
/// `k` zero bytes, so eight lookups advance the CRC by eight bytes at once.
const TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
};

/// CRC-32 of `bytes`, continuing from `crc` (start with 0).
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let lo = c ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let hi = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        c = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][(hi & 0xff) as usize]
            ^ TABLES[2][((hi >> 8) & 0xff) as usize]
            ^ TABLES[1][((hi >> 16) & 0xff) as usize]
            ^ TABLES[0][(hi >> 24) as usize];
    }
    !bytewise(c, chunks.remainder())
}

/// The inner loop on the un-inverted register.
fn bytewise(mut c: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        c = TABLES[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition, the reference twin of [`crc32`].
    fn crc32_bytewise(crc: u32, bytes: &[u8]) -> u32 {
        !bytewise(!crc, bytes)
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xCBF4_3926);
        assert_eq!(crc32_bytewise(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(0, b""), 0);
    }

    #[test]
    fn eight_bytes_a_step_equal_one_byte_a_step() {
        // Every length and start offset up to a few steps of eight, from a seeded generator,
        // and continued from a non-zero CRC.
        let mut state = 0x9E37_79B9_u32;
        let bytes: [u8; 200] = core::array::from_fn(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        });
        for start in 0..9 {
            for end in start..bytes.len() {
                let part = &bytes[start..end];
                assert_eq!(crc32(0, part), crc32_bytewise(0, part), "{start}..{end}");
                assert_eq!(
                    crc32(0x1234_5678, part),
                    crc32_bytewise(0x1234_5678, part),
                    "{start}..{end} continued"
                );
            }
        }
    }
}
