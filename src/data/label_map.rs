//! Label maps: palette or grey index PNGs read as raw class indices (never the palette's
//! colours), resized without blending, and written back with the palette the caller gives (a
//! preset's, such as `facade::COLORS`, or a user's classes). The one codec the data loaders,
//! `predict` and the fuzzer use; it knows no data set.

use std::io::Cursor;
use std::path::Path;

use super::DataError;
use super::IGNORE_LABEL;
use super::classes::IGNORE_COLOR;

/// Class indices read from a label PNG.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelMap {
    pub width: u32,
    pub height: u32,
    pub indices: Vec<u8>,
}

/// Label maps larger than this on a side are refused (Mini Facade's are 256 pixels).
pub const MAX_LABEL_SIDE: u32 = 16_384;

/// Reads a palette (1, 2, 4 or 8 bits) or grey (up to 8 bits) PNG as raw indices: the pixel
/// values themselves, never the palette's colours.
pub fn decode_label_map(path: &Path, bytes: &[u8]) -> Result<LabelMap, DataError> {
    let bad = |reason: String| DataError::BadLabelMap {
        path: path.into(),
        reason,
    };
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| bad(format!("not a readable PNG: {e}")))?;
    // The header is checked before any buffer is sized from it (found by fuzzing: a 120-byte
    // file announcing 16x4,284,940,304 pixels).
    let (w, h) = (reader.info().width, reader.info().height);
    if w > MAX_LABEL_SIDE || h > MAX_LABEL_SIDE {
        return Err(bad(format!(
            "label map is {w}x{h}, larger than the {MAX_LABEL_SIDE} pixels a side convlab reads"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("image too large".into()))?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("corrupt PNG data: {e}")))?;
    let bits = frame.bit_depth as u8 as usize;
    match (frame.color_type, bits) {
        (png::ColorType::Indexed | png::ColorType::Grayscale, 1 | 2 | 4 | 8) => {}
        (color, bits) => {
            return Err(bad(format!(
                "label maps must be palette or grey index PNGs of at most 8 bits, found {color:?} with {bits} bits"
            )));
        }
    }
    let (width, height) = (frame.width, frame.height);
    let mut indices = Vec::with_capacity((width * height) as usize);
    let per_byte = 8 / bits;
    let mask = ((1u16 << bits) - 1) as u8;
    for row in buf[..frame.line_size * height as usize].chunks(frame.line_size) {
        for x in 0..width as usize {
            let byte = row[x / per_byte];
            let shift = 8 - bits * (x % per_byte + 1);
            indices.push((byte >> shift) & mask);
        }
    }
    Ok(LabelMap {
        width,
        height,
        indices,
    })
}

/// Resizes a label map with nearest-neighbour sampling (class indices must not be blended).
pub fn resize_nearest(map: &LabelMap, side: usize) -> Vec<u8> {
    if (map.width as usize, map.height as usize) == (side, side) {
        return map.indices.clone();
    }
    let mut out = Vec::with_capacity(side * side);
    for y in 0..side {
        let sy = ((y as f64 + 0.5) * map.height as f64 / side as f64) as usize;
        for x in 0..side {
            let sx = ((x as f64 + 0.5) * map.width as f64 / side as f64) as usize;
            out.push(
                map.indices[sy.min(map.height as usize - 1) * map.width as usize
                    + sx.min(map.width as usize - 1)],
            );
        }
    }
    out
}

/// Encodes class indices as a palette PNG whose entry `c` is `colors[c]`: 4-bit where every
/// index fits (Mini Facade's own format), else 8-bit with the ignore label in
/// [`IGNORE_COLOR`].
pub fn encode_label_map_with(
    width: u32,
    height: u32,
    indices: &[u8],
    colors: &[[u8; 3]],
) -> Vec<u8> {
    let four_bits = colors.len() <= 16 && indices.iter().all(|&v| v < 16);
    let mut palette: Vec<u8> = colors.iter().flatten().copied().collect();
    if !four_bits {
        palette.resize(3 * 256, 0);
        palette[3 * IGNORE_LABEL as usize..].copy_from_slice(&IGNORE_COLOR);
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_palette(palette);
        if four_bits {
            encoder.set_depth(png::BitDepth::Four);
            let mut writer = encoder.write_header().expect("in-memory PNG header");
            let row_bytes = (width as usize).div_ceil(2);
            let mut packed = vec![0u8; row_bytes * height as usize];
            for y in 0..height as usize {
                for x in 0..width as usize {
                    let v = indices[y * width as usize + x] & 0x0f;
                    packed[y * row_bytes + x / 2] |= if x % 2 == 0 { v << 4 } else { v };
                }
            }
            writer
                .write_image_data(&packed)
                .expect("in-memory PNG data");
        } else {
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().expect("in-memory PNG header");
            writer
                .write_image_data(indices)
                .expect("in-memory PNG data");
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of `color` and `depth` holding `values` as they are (test input of any kind).
    pub(crate) fn encode(
        color: png::ColorType,
        depth: png::BitDepth,
        width: u32,
        height: u32,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, width, height);
            e.set_color(color);
            e.set_depth(depth);
            if color == png::ColorType::Indexed {
                e.set_palette(vec![7u8; 3 * 16]);
            }
            e.write_header().unwrap().write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn four_bit_palette_is_read_as_indices() {
        // 3x2 image, indices [0 1 2 / 3 4 0], rows padded to whole bytes.
        let png = encode(
            png::ColorType::Indexed,
            png::BitDepth::Four,
            3,
            2,
            &[0x01, 0x20, 0x34, 0x00],
        );
        let map = decode_label_map(Path::new("a.png"), &png).unwrap();
        assert_eq!(map.indices, vec![0, 1, 2, 3, 4, 0]);
        // The palette's colours (all 7s here, and two of five in ours) play no part.
        let palette = [[9, 9, 9], [200, 100, 0]];
        let ours = encode_label_map_with(3, 2, &[0, 1, 2, 3, 4, 0], &palette);
        assert_eq!(
            decode_label_map(Path::new("b.png"), &ours).unwrap().indices,
            vec![0, 1, 2, 3, 4, 0]
        );
    }

    #[test]
    fn eight_bit_palette_and_grey_are_read_as_indices() {
        let data = [4u8, 3, 2, 1, 0, 1];
        for color in [png::ColorType::Indexed, png::ColorType::Grayscale] {
            let png = encode(color, png::BitDepth::Eight, 3, 2, &data);
            assert_eq!(
                decode_label_map(Path::new("a.png"), &png).unwrap().indices,
                data.to_vec()
            );
        }
    }

    #[test]
    fn rgb_and_garbage_label_maps_are_refused_with_the_file_name() {
        let rgb = encode(
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            1,
            1,
            &[0, 128, 255],
        );
        let err = decode_label_map(Path::new("x/rgb.png"), &rgb).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x/rgb.png: label maps must be palette or grey"),
            "{err}"
        );
        let err = decode_label_map(Path::new("x/junk.png"), b"not a png at all").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x/junk.png: not a readable PNG"),
            "{err}"
        );
        let truncated = &rgb[..rgb.len() - 20];
        assert!(decode_label_map(Path::new("x/t.png"), truncated).is_err());
    }

    /// Found by `cargo fuzz run label_map` (fuzz/artifacts/label_map/crash-de9cc513...): a
    /// valid 4-bit palette PNG whose header announces 16 x 4,284,940,304 pixels, which made the
    /// decoder ask for a 32 GiB buffer.
    #[test]
    fn a_huge_announced_size_is_refused_before_allocating() {
        let crash: &[u8] = &[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
            0x44, 0x52, 0x00, 0x00, 0x00, 0x10, 0xff, 0x67, 0x00, 0x10, 0x04, 0x03, 0x00, 0x00,
            0x00, 0xed, 0xdd, 0xe2, 0x52, 0x00, 0x00, 0x00, 0x0f, 0x50, 0x4c, 0x54, 0x45, 0x00,
            0x00, 0x00, 0x00, 0x80, 0xff, 0x80, 0xff, 0x80, 0xff, 0x80, 0x00, 0xff, 0x00, 0x00,
            0xfa, 0x1a, 0xc6, 0xee, 0x00, 0x00, 0x00, 0x24, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c,
            0x63, 0x60, 0x60, 0x10, 0x14, 0x54, 0x52, 0x32, 0x36, 0x66, 0xc0, 0xc3, 0x80, 0x50,
            0x2e, 0x2e, 0xf8, 0x18, 0x50, 0x8a, 0x01, 0x1f, 0x03, 0x42, 0x09, 0x0a, 0xe2, 0x61,
            0x00, 0x00, 0xbc, 0x94, 0x11, 0x89, 0x2f, 0xc6, 0x1a, 0xd3, 0x00, 0x00, 0x00, 0x00,
            0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
        ];
        // The fuzz build skips PNG checksums; a real file would carry correct ones.
        let mut file = crash.to_vec();
        let mut at = 8;
        while at + 12 <= file.len() {
            let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            let mut crc = flate2::Crc::new();
            crc.update(&file[at + 4..at + 8 + len]);
            file[at + 8 + len..at + 12 + len].copy_from_slice(&crc.sum().to_be_bytes());
            at += 12 + len;
        }
        let err = decode_label_map(Path::new("x/huge.png"), &file).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x/huge.png: label map is 16x4284940304, larger than"),
            "{err}"
        );
    }
}
