//! Mini Facade (and the original CMP Facade Database): photos with per-pixel class maps.
//!
//! Layouts read, per split folder:
//! - Mini Facade: `eecs442_NNNN.jpg` photos with `eecs442_NNNN.png` label maps whose pixel
//!   value is the class index 0..4 (4-bit palette PNGs; 8-bit palette and 8-bit grey index maps
//!   are accepted too). Indices are read, never colours.
//! - CMP Facade Database: `cmp_*.jpg` / `cmp_*.png` with the 12 CMP classes (indices 1..12),
//!   mapped to the five classes by [`cmp_to_mini`] and resized to 256x256 (photos with a
//!   triangle filter, labels nearest-neighbour).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::{DataError, locate};

pub const CLASS_NAMES: [&str; 5] = ["others", "facade", "pillar", "window", "balcony"];
pub const NUM_CLASSES: usize = 5;
/// The dataset's palette: others #000000, facade #0080FF, pillar #80FF80, window #FF8000,
/// balcony #FF0000.
pub const COLORS: [[u8; 3]; NUM_CLASSES] = [
    [0, 0, 0],
    [0, 128, 255],
    [128, 255, 128],
    [255, 128, 0],
    [255, 0, 0],
];
pub const SIDE: usize = 256;

/// The CMP Facade Database's 12 classes (1 background, 2 facade, 3 window, 4 door, 5 cornice,
/// 6 sill, 7 balcony, 8 blind, 9 deco, 10 molding, 11 pillar, 12 shop) to the five: facade,
/// pillar, window and balcony are kept, everything else becomes "others" (0).
pub fn cmp_to_mini(cmp: u8) -> Option<u8> {
    match cmp {
        2 => Some(1),
        11 => Some(2),
        3 => Some(3),
        7 => Some(4),
        1 | 4 | 5 | 6 | 8 | 9 | 10 | 12 => Some(0),
        _ => None,
    }
}

/// Photos (CHW, RGB) and label maps of one split, all `SIDE x SIDE`.
#[derive(Clone, Debug)]
pub struct FacadeSet {
    pub names: Vec<String>,
    /// `count * 3 * SIDE * SIDE` bytes.
    pub photos: Vec<u8>,
    /// `count * SIDE * SIDE` class indices.
    pub labels: Vec<u8>,
}

impl FacadeSet {
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn photo(&self, i: usize) -> &[u8] {
        let n = 3 * SIDE * SIDE;
        &self.photos[i * n..(i + 1) * n]
    }

    pub fn label(&self, i: usize) -> &[u8] {
        let n = SIDE * SIDE;
        &self.labels[i * n..(i + 1) * n]
    }
}

/// The Mini Facade folder's two splits.
#[derive(Clone, Debug)]
pub struct MiniFacade {
    pub dir: PathBuf,
    pub train: FacadeSet,
    pub test: FacadeSet,
}

impl MiniFacade {
    /// Finds the data set (`--data`, `$CONVLAB_DATA/mini_facade`, `./data/mini_facade`) and loads
    /// `train/` and `test_dev/`.
    pub fn find_and_load(explicit: Option<&Path>) -> Result<Self, DataError> {
        let tried = locate::candidates("mini_facade", explicit, &[]);
        let dir = tried
            .iter()
            .find(|d| d.join("train").is_dir() && d.join("test_dev").is_dir())
            .cloned()
            .ok_or_else(|| DataError::NotFound {
                name: "mini_facade",
                tried: tried.clone(),
                hint: "there is no public download for Mini Facade: put its train/ and test_dev/ folders (eecs442_NNNN.jpg photos with eecs442_NNNN.png label maps) in ./data/mini_facade, or set CONVLAB_DATA, or pass --data DIR".into(),
            })?;
        Self::load_dir(&dir)
    }

    pub fn load_dir(dir: &Path) -> Result<Self, DataError> {
        Ok(MiniFacade {
            dir: dir.into(),
            train: load_split(&dir.join("train"))?,
            test: load_split(&dir.join("test_dev"))?,
        })
    }
}

/// Which naming and label convention a file follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Mini,
    Cmp,
}

fn layout_of(stem: &str) -> Option<Layout> {
    if stem.starts_with("cmp_") {
        Some(Layout::Cmp)
    } else if stem.starts_with("eecs442_") {
        Some(Layout::Mini)
    } else {
        None
    }
}

/// Loads every photo/label pair of a split folder, in name order.
pub fn load_split(dir: &Path) -> Result<FacadeSet, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let (mut photos, mut labels) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if layout_of(&stem).is_none() {
            continue;
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jpg" | "jpeg") => photos.push(stem),
            Some("png") => labels.push(stem),
            _ => {}
        }
    }
    photos.sort();
    labels.sort();
    if let Some(stem) = photos.iter().find(|s| labels.binary_search(s).is_err()) {
        return Err(DataError::MissingPair {
            path: dir.join(format!("{stem}.jpg")),
            missing: dir.join(format!("{stem}.png")),
            what: "photo has no label map",
        });
    }
    if let Some(stem) = labels.iter().find(|s| photos.binary_search(s).is_err()) {
        return Err(DataError::MissingPair {
            path: dir.join(format!("{stem}.png")),
            missing: dir.join(format!("{stem}.jpg")),
            what: "label map has no photo",
        });
    }
    if photos.is_empty() {
        return Err(DataError::EmptySplit { path: dir.into() });
    }
    let mut set = FacadeSet {
        names: Vec::with_capacity(photos.len()),
        photos: Vec::with_capacity(photos.len() * 3 * SIDE * SIDE),
        labels: Vec::with_capacity(photos.len() * SIDE * SIDE),
    };
    let bar = crate::progress::count_bar(photos.len(), &format!("loading {}", dir.display()));
    for stem in photos {
        let photo_path = find_photo(dir, &stem);
        let label_path = dir.join(format!("{stem}.png"));
        let layout = layout_of(&stem).expect("filtered above");
        let (photo, label) = load_pair(&photo_path, &label_path, layout)?;
        set.photos.extend_from_slice(&photo);
        set.labels.extend_from_slice(&label);
        set.names.push(stem);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(set)
}

fn find_photo(dir: &Path, stem: &str) -> PathBuf {
    ["jpg", "jpeg", "JPG", "JPEG"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join(format!("{stem}.jpg")))
}

/// One photo (CHW RGB) and its label map, both `SIDE x SIDE`.
fn load_pair(
    photo_path: &Path,
    label_path: &Path,
    layout: Layout,
) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let photo = read_photo(photo_path)?;
    let bytes = std::fs::read(label_path).map_err(|e| DataError::io(label_path, e))?;
    let mut label = decode_label_map(label_path, &bytes)?;
    if (photo.width(), photo.height()) != (label.width, label.height) {
        return Err(DataError::SizeMismatch {
            path: label_path.into(),
            label: (label.width, label.height),
            photo_path: photo_path.into(),
            photo: (photo.width(), photo.height()),
        });
    }
    if layout == Layout::Cmp {
        for (i, v) in label.indices.iter_mut().enumerate() {
            *v = cmp_to_mini(*v).ok_or_else(|| bad_value(label_path, i, label.width, *v, 12))?;
        }
    } else if let Some(i) = label
        .indices
        .iter()
        .position(|&v| v as usize >= NUM_CLASSES)
    {
        return Err(bad_value(
            label_path,
            i,
            label.width,
            label.indices[i],
            NUM_CLASSES as u8 - 1,
        ));
    }
    let photo = if (photo.width(), photo.height()) == (SIDE as u32, SIDE as u32) {
        photo
    } else {
        image::imageops::resize(&photo, SIDE as u32, SIDE as u32, FilterType::Triangle)
    };
    let label = resize_nearest(&label, SIDE);
    Ok((hwc_to_chw(&photo), label))
}

fn bad_value(path: &Path, index: usize, width: u32, value: u8, max: u8) -> DataError {
    DataError::BadLabelValue {
        path: path.into(),
        x: index as u32 % width,
        y: index as u32 / width,
        value,
        max,
    }
}

/// Decodes a JPEG or PNG photo of any colour type to RGB.
pub fn read_photo(path: &Path) -> Result<image::RgbImage, DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.into() });
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let decoded = reader.decode().map_err(|e| DataError::BadImage {
        path: path.into(),
        reason: e.to_string(),
    })?;
    Ok(decoded.to_rgb8())
}

pub fn hwc_to_chw(photo: &image::RgbImage) -> Vec<u8> {
    let plane = (photo.width() * photo.height()) as usize;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in photo.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = px.0[c];
        }
    }
    out
}

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

/// Encodes class indices as a palette PNG with the dataset's colours (4-bit, like the data).
pub fn encode_label_map(width: u32, height: u32, indices: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Four);
        encoder.set_palette(COLORS.iter().flatten().copied().collect::<Vec<u8>>());
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
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(
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
        // The palette's colours (all 7s here) play no part.
        let ours = encode_label_map(3, 2, &[0, 1, 2, 3, 4, 0]);
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

    fn write_pair(dir: &Path, stem: &str, side: u32, label: &[u8]) {
        image::RgbImage::from_pixel(side, side, image::Rgb([10, 20, 30]))
            .save(dir.join(format!("{stem}.jpg")))
            .unwrap();
        std::fs::write(
            dir.join(format!("{stem}.png")),
            encode_label_map(side, side, label),
        )
        .unwrap();
    }

    #[test]
    fn split_folder_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_pair(d, "eecs442_0000", 256, &vec![1; 256 * 256]);
        assert_eq!(load_split(d).unwrap().len(), 1);

        std::fs::copy(d.join("eecs442_0000.jpg"), d.join("eecs442_0001.jpg")).unwrap();
        let err = load_split(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("eecs442_0001.jpg: photo has no label map"),
            "{err}"
        );
        std::fs::remove_file(d.join("eecs442_0001.jpg")).unwrap();

        std::fs::copy(d.join("eecs442_0000.png"), d.join("eecs442_0002.png")).unwrap();
        let err = load_split(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("eecs442_0002.png: label map has no photo"),
            "{err}"
        );
        std::fs::remove_file(d.join("eecs442_0002.png")).unwrap();

        let mut bad = vec![0u8; 256 * 256];
        bad[256 * 3 + 5] = 7;
        std::fs::write(d.join("eecs442_0000.png"), encode_label_map(256, 256, &bad)).unwrap();
        let err = load_split(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("eecs442_0000.png: label value 7 at (5, 3)"),
            "{err}"
        );

        std::fs::write(
            d.join("eecs442_0000.png"),
            encode_label_map(128, 128, &vec![0; 128 * 128]),
        )
        .unwrap();
        let err = load_split(d).unwrap_err();
        assert!(
            err.to_string().contains("label map is 128x128 but"),
            "{err}"
        );

        std::fs::write(
            d.join("eecs442_0000.png"),
            encode_label_map(256, 256, &vec![0; 256 * 256]),
        )
        .unwrap();
        std::fs::write(d.join("eecs442_0000.jpg"), b"not a jpeg").unwrap();
        let err = load_split(d).unwrap_err();
        assert!(
            err.to_string()
                .contains("eecs442_0000.jpg: cannot decode image"),
            "{err}"
        );
    }

    #[test]
    fn cmp_layout_is_mapped_and_resized() {
        let dir = tempfile::tempdir().unwrap();
        // 4x4 CMP map: each row one CMP class; resized 4 -> 256 by nearest neighbour.
        let cmp: Vec<u8> = [2u8, 11, 3, 7].iter().flat_map(|&c| [c; 4]).collect();
        image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]))
            .save(dir.path().join("cmp_b0001.jpg"))
            .unwrap();
        std::fs::write(
            dir.path().join("cmp_b0001.png"),
            encode(png::ColorType::Indexed, png::BitDepth::Eight, 4, 4, &cmp),
        )
        .unwrap();
        let set = load_split(dir.path()).unwrap();
        let label = set.label(0);
        assert_eq!(label.len(), SIDE * SIDE);
        for (row, class) in [(0, 1), (64, 2), (128, 3), (255, 4)] {
            assert!(
                label[row * SIDE..(row + 1) * SIDE]
                    .iter()
                    .all(|&v| v == class),
                "row {row}"
            );
        }
        assert_eq!(cmp_to_mini(1), Some(0));
        assert_eq!(cmp_to_mini(13), None);
    }
}
