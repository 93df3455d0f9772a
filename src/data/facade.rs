//! Mini Facade (and the original CMP Facade Database): photos with per-pixel class maps.
//!
//! Layouts read, per split folder:
//! - Mini Facade: `eecs442_NNNN.jpg` photos with `eecs442_NNNN.png` label maps whose pixel
//!   value is the class index 0..4 (4-bit palette PNGs; 8-bit palette and 8-bit grey index maps
//!   are accepted too). Indices are read, never colours.
//! - CMP Facade Database: `cmp_*.jpg` / `cmp_*.png` with the 12 CMP classes (indices 1..12),
//!   mapped to the five classes by [`cmp_to_mini`] and resized to 256x256 (photos with a
//!   triangle filter, labels nearest-neighbour).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::label_map::{decode_label_map, encode_label_map_with, resize_nearest};
use super::{ClassSpec, DataError, SegmentedImages, locate};

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

/// Encodes class indices as a palette PNG with Mini Facade's colours (4-bit, like the data).
pub fn encode_label_map(width: u32, height: u32, indices: &[u8]) -> Vec<u8> {
    encode_label_map_with(width, height, indices, &COLORS)
}

/// The five classes with their colours, as a user's `classes.json` would list them.
pub fn classes() -> Vec<ClassSpec> {
    CLASS_NAMES
        .iter()
        .zip(COLORS)
        .map(|(name, color)| ClassSpec::new(name, color))
        .collect()
}

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

/// The Mini Facade folder's two splits.
#[derive(Clone, Debug)]
pub struct MiniFacade {
    pub dir: PathBuf,
    pub train: SegmentedImages,
    pub test: SegmentedImages,
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
pub fn load_split(dir: &Path) -> Result<SegmentedImages, DataError> {
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
    let mut set = SegmentedImages {
        side: SIDE,
        names: Vec::with_capacity(photos.len()),
        images: Vec::with_capacity(photos.len() * 3 * SIDE * SIDE),
        labels: Vec::with_capacity(photos.len() * SIDE * SIDE),
    };
    let bar = crate::progress::count_bar(photos.len(), &format!("loading {}", dir.display()));
    for stem in photos {
        let photo_path = find_photo(dir, &stem);
        let label_path = dir.join(format!("{stem}.png"));
        let layout = layout_of(&stem).expect("filtered above");
        let (photo, label) = load_pair(&photo_path, &label_path, layout)?;
        set.images.extend_from_slice(&photo);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::label_map::tests::encode;

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
