//! The IDX format of the MNIST family: big-endian header (magic, dimensions), then raw bytes.
//! Files may be gzip-compressed; checksums are taken over the decompressed payload, so the
//! upstream files and Debian's (which differ only in gzip headers) verify alike.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::DataError;

const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES_MAGIC: u32 = 0x0000_0803;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Grey images from an IDX3 file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Reads a file, decompressing it when it starts with the gzip magic bytes.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.into() });
    }
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decompress_if_gzip(path, raw)
}

/// `raw` itself, or its decompressed content when it starts with the gzip magic bytes.
pub fn decompress_if_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 2);
    GzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| DataError::CorruptGzip {
            path: path.into(),
            reason: e.to_string(),
        })?;
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the SHA-256 of `bytes` (already decompressed) read from `path`.
pub fn verify_sha256(path: &Path, bytes: &[u8], expected: &str) -> Result<(), DataError> {
    let found = sha256_hex(bytes);
    if found == expected {
        Ok(())
    } else {
        Err(DataError::Checksum {
            path: path.into(),
            expected: expected.into(),
            found,
        })
    }
}

fn header(path: &Path, bytes: &[u8], words: usize) -> Result<Vec<u32>, DataError> {
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path: path.into() });
    }
    if bytes.len() < 4 * words {
        return Err(DataError::ShortHeader {
            path: path.into(),
            expected: 4 * words,
            found: bytes.len(),
        });
    }
    Ok(bytes[..4 * words]
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

fn check_magic(
    path: &Path,
    kind: &'static str,
    found: u32,
    expected: u32,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::BadMagic {
            path: path.into(),
            kind,
            expected,
            found,
        })
    }
}

fn check_length(path: &Path, payload: &[u8], expected: usize) -> Result<(), DataError> {
    if payload.len() == expected {
        Ok(())
    } else {
        Err(DataError::WrongLength {
            path: path.into(),
            expected,
            found: payload.len(),
        })
    }
}

/// Parses an IDX1 label file whose labels must lie in `0..classes`.
pub fn parse_labels(path: &Path, bytes: &[u8], classes: usize) -> Result<Vec<u8>, DataError> {
    let h = header(path, bytes, 2)?;
    check_magic(path, "label", h[0], LABELS_MAGIC)?;
    let payload = &bytes[8..];
    check_length(path, payload, h[1] as usize)?;
    if let Some((index, &label)) = payload
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.into(),
            index,
            label,
            classes,
        });
    }
    Ok(payload.to_vec())
}

/// Parses an IDX3 image file.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<IdxImages, DataError> {
    let h = header(path, bytes, 4)?;
    check_magic(path, "image", h[0], IMAGES_MAGIC)?;
    let (count, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .unwrap_or(usize::MAX);
    let payload = &bytes[16..];
    check_length(path, payload, expected)?;
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels: payload.to_vec(),
    })
}

/// Encodes images as IDX3 bytes (tests and fuzzing build files with it).
pub fn encode_images(images: &IdxImages) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for word in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels as IDX1 bytes.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from("some/file-idx")
    }

    fn images() -> IdxImages {
        IdxImages {
            count: 2,
            rows: 2,
            cols: 3,
            pixels: (0..12).collect(),
        }
    }

    #[test]
    fn good_files_round_trip() {
        assert_eq!(
            parse_images(&path(), &encode_images(&images())).unwrap(),
            images()
        );
        assert_eq!(
            parse_labels(&path(), &encode_labels(&[3, 9, 0]), 10).unwrap(),
            vec![3, 9, 0]
        );
    }

    #[test]
    fn wrong_magic_is_named() {
        let mut bytes = encode_images(&images());
        bytes[3] = 0x01; // an IDX1 magic in an image file
        let err = parse_images(&path(), &bytes).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x801, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("some/file-idx: not an IDX image file")
        );
        let err = parse_labels(&path(), &encode_images(&images()), 10).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x803, .. }),
            "{err}"
        );
    }

    #[test]
    fn truncated_payload_and_header() {
        let bytes = encode_images(&images());
        let err = parse_images(&path(), &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::WrongLength {
                    expected: 12,
                    found: 11,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_images(&path(), &bytes[..7]).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ShortHeader {
                    expected: 16,
                    found: 7,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_labels(&path(), &[], 10).unwrap_err();
        assert!(matches!(err, DataError::EmptyFile { .. }), "{err}");
    }

    #[test]
    fn label_out_of_range() {
        let err = parse_labels(&path(), &encode_labels(&[1, 2, 10]), 10).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 2,
                    label: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_header_does_not_overflow_or_allocate() {
        let mut bytes = Vec::new();
        for w in [0x803u32, u32::MAX, u32::MAX, u32::MAX] {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        assert!(matches!(
            parse_images(&path(), &bytes),
            Err(DataError::WrongLength { .. })
        ));
    }

    #[test]
    fn gzip_is_transparent_and_corrupt_gzip_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode_labels(&[1, 2, 3]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let good = dir.path().join("good.gz");
        std::fs::write(&good, &gz).unwrap();
        assert_eq!(read_maybe_gzip(&good).unwrap(), raw);
        let bad = dir.path().join("bad.gz");
        std::fs::write(&bad, &gz[..gz.len() / 2]).unwrap();
        let err = read_maybe_gzip(&bad).unwrap_err();
        assert!(matches!(err, DataError::CorruptGzip { .. }), "{err}");
        assert!(err.to_string().contains("bad.gz"));
        let err = read_maybe_gzip(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::IsDirectory { .. }), "{err}");
    }

    #[test]
    fn checksum_is_of_the_decompressed_bytes() {
        // sha256("abc"), FIPS 180-2 test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert!(verify_sha256(&path(), b"abc", abc).is_ok());
        let err = verify_sha256(&path(), b"abd", abc).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    }
}
