//! A segmentation data set from the user's own folder:
//!
//! ```text
//! DIR/classes.json            [{"name": "background", "color": "#000000"}, ...] in class-index order
//! DIR/train/images/STEM.jpg   photos (.jpg, .jpeg or .png, any case)
//! DIR/train/masks/STEM.png    one mask per photo, same stem
//! DIR/val/, DIR/test/         optional, laid out like train/
//! ```
//!
//! A mask is either an index map (palette or grey PNG: pixel value = class index, 255 = ignore)
//! or an RGB/RGBA PNG painted in classes.json's colours.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use rayon::prelude::*;
use serde_json::Value;

use super::classes::hex_color;
use super::facade::{hwc_to_chw, read_photo};
use super::label_map::{LabelMap, MAX_LABEL_SIDE, decode_label_map, resize_nearest};
use super::{ClassSpec, DataError, IGNORE_LABEL, SegmentedImages};

/// Index 255 is [`IGNORE_LABEL`], so it cannot be a class.
pub const MAX_CLASSES: usize = IGNORE_LABEL as usize;

const CLASSES_EXAMPLE: &str =
    r##"[{"name": "background", "color": "#000000"}, {"name": "window", "color": "#FF8000"}]"##;

/// The expected layout, for errors about a missing part of it.
const LAYOUT_HINT: &str = "a mask folder holds classes.json, train/images/ (photos: .jpg, .jpeg or .png) and train/masks/ (one <stem>.png per photo), and optionally val/ and test/ laid out like train/";

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads and checks classes.json.
pub fn read_classes(path: &Path) -> Result<Vec<ClassSpec>, DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.into() });
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::MissingFile {
                path: path.into(),
                hint: format!(
                    "a mask folder starts with classes.json, a JSON list of its classes in class-index order, e.g. {CLASSES_EXAMPLE}"
                ),
            });
        }
        Err(e) => return Err(DataError::io(path, e)),
    };
    let bad = |reason: String| DataError::BadClasses {
        path: path.into(),
        reason,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "not valid JSON ({e}); expected e.g. {CLASSES_EXAMPLE}"
        ))
    })?;
    let Value::Array(entries) = &value else {
        return Err(bad(format!(
            "expected a JSON list of classes, found {}; e.g. {CLASSES_EXAMPLE}",
            json_kind(&value)
        )));
    };
    if entries.len() > MAX_CLASSES {
        return Err(bad(format!(
            "holds {} classes, more than {MAX_CLASSES} (mask value 255 marks ignored pixels)",
            entries.len()
        )));
    }
    let mut classes: Vec<ClassSpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(fields) = entry else {
            return Err(bad(format!(
                "entry {i} is {}, expected an object like {{\"name\": \"window\", \"color\": \"#FF8000\"}}",
                json_kind(entry)
            )));
        };
        let name = match fields.get("name") {
            None => return Err(bad(format!("entry {i} has no \"name\""))),
            Some(Value::String(name)) if name.trim().is_empty() => {
                return Err(bad(format!("entry {i}: \"name\" is empty")));
            }
            Some(Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "entry {i}: \"name\" must be a string, found {}",
                    json_kind(other)
                )));
            }
        };
        let color = match fields.get("color") {
            None if fields.contains_key("colour") => {
                return Err(bad(format!(
                    "entry {i} ({name}) has no \"color\" (the key is spelt \"color\", not \"colour\")"
                )));
            }
            None => return Err(bad(format!("entry {i} ({name}) has no \"color\""))),
            Some(Value::String(text)) => hex_color::parse(text).ok_or_else(|| {
                bad(format!(
                    "entry {i} ({name}): colour {text:?} is not #RRGGBB (six hex digits, e.g. \"#FF8000\")"
                ))
            })?,
            Some(other) => {
                return Err(bad(format!(
                    "entry {i} ({name}): \"color\" must be a string like \"#FF8000\", found {}",
                    json_kind(other)
                )));
            }
        };
        if let Some(j) = classes.iter().position(|c| c.name == name) {
            return Err(bad(format!(
                "entry {i}: name {name:?} is already entry {j}'s"
            )));
        }
        if let Some(j) = classes.iter().position(|c| c.color == color) {
            return Err(bad(format!(
                "entry {i} ({name}): colour {} is already entry {j}'s ({})",
                hex_color::format(color),
                classes[j].name
            )));
        }
        classes.push(ClassSpec { name, color });
    }
    if classes.len() < 2 {
        return Err(bad(format!(
            "holds {} class{}; segmentation needs at least 2 (e.g. background and one object)",
            classes.len(),
            if classes.len() == 1 { "" } else { "es" }
        )));
    }
    Ok(classes)
}

/// A mask folder's classes and splits.
#[derive(Clone, Debug)]
pub struct MaskFolder {
    pub root: PathBuf,
    pub classes: Vec<ClassSpec>,
    pub train: SegmentedImages,
    /// `Some` only when `DIR/val` exists.
    pub val: Option<SegmentedImages>,
    /// `Some` only when `DIR/test` exists.
    pub test: Option<SegmentedImages>,
}

/// Loads every split present, photos resized to `side x side` (Triangle filter, only when the
/// size differs), masks resized nearest-neighbour.
pub fn load(root: &Path, side: usize) -> Result<MaskFolder, DataError> {
    assert!(side > 0, "mask_folder::load: side must be positive");
    if !root.is_dir() {
        return Err(DataError::MissingFile {
            path: root.into(),
            hint: LAYOUT_HINT.into(),
        });
    }
    let classes = read_classes(&root.join("classes.json"))?;
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        return Err(DataError::MissingFile {
            path: train_dir,
            hint: LAYOUT_HINT.into(),
        });
    }
    let train = load_split(&train_dir, &classes, side)?;
    let optional_split = |name: &str| {
        let dir = root.join(name);
        if dir.is_dir() {
            load_split(&dir, &classes, side).map(Some)
        } else {
            Ok(None)
        }
    };
    let val = optional_split("val")?;
    let test = optional_split("test")?;
    Ok(MaskFolder {
        root: root.into(),
        classes,
        train,
        val,
        test,
    })
}

struct Pair {
    stem: String,
    photo: PathBuf,
    mask: PathBuf,
}

/// The split's photo/mask pairs, sorted by stem; every photo needs a mask and every mask a
/// photo, so a misnamed file is reported rather than silently dropped.
fn list_pairs(split_dir: &Path) -> Result<Vec<Pair>, DataError> {
    let images_dir = split_dir.join("images");
    let masks_dir = split_dir.join("masks");
    for dir in [&images_dir, &masks_dir] {
        if !dir.is_dir() {
            return Err(DataError::MissingFile {
                path: dir.clone(),
                hint: LAYOUT_HINT.into(),
            });
        }
    }
    let photos = files_by_stem(&images_dir, &["jpg", "jpeg", "png"])?;
    if photos.is_empty() {
        return Err(DataError::NoPhotos { path: images_dir });
    }
    let masks = files_by_stem(&masks_dir, &["png"])?;
    if let Some((stem, photo)) = photos.iter().find(|(stem, _)| !masks.contains_key(*stem)) {
        return Err(DataError::MissingPair {
            path: photo.clone(),
            missing: masks_dir.join(format!("{stem}.png")),
            what: "photo has no mask",
        });
    }
    if let Some((stem, mask)) = masks.iter().find(|(stem, _)| !photos.contains_key(*stem)) {
        return Err(DataError::MaskWithoutPhoto {
            path: mask.clone(),
            expected_stem: images_dir.join(stem),
        });
    }
    Ok(photos
        .into_iter()
        .map(|(stem, photo)| Pair {
            mask: masks[&stem].clone(),
            stem,
            photo,
        })
        .collect())
}

/// The files of `dir` with one of `extensions` (any case), by stem. Hidden files (macOS's
/// `._photo.jpg` and the like) are skipped; two files sharing a stem are refused, since a mask
/// could not tell which photo it belongs to.
fn files_by_stem(dir: &Path, extensions: &[&str]) -> Result<BTreeMap<String, PathBuf>, DataError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)));
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if wanted && !hidden && !path.is_dir() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut by_stem: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
            continue;
        };
        if let Some(other) = by_stem.get(&stem) {
            return Err(DataError::DuplicateStem {
                path,
                other: other.clone(),
            });
        }
        by_stem.insert(stem, path);
    }
    Ok(by_stem)
}

fn load_split(
    split_dir: &Path,
    classes: &[ClassSpec],
    side: usize,
) -> Result<SegmentedImages, DataError> {
    let pairs = list_pairs(split_dir)?;
    let bar = crate::progress::count_bar(pairs.len(), &format!("loading {}", split_dir.display()));
    let decoded: Result<Vec<_>, DataError> = pairs
        .par_iter()
        .map(|pair| {
            let loaded = load_pair(&pair.photo, &pair.mask, classes, side);
            bar.inc(1);
            loaded
        })
        .collect();
    bar.finish_and_clear();
    let decoded = decoded?;
    let mut set = SegmentedImages::empty(side);
    set.images.reserve_exact(pairs.len() * 3 * side * side);
    set.labels.reserve_exact(pairs.len() * side * side);
    for (pair, (photo, label)) in pairs.into_iter().zip(decoded) {
        set.push(pair.stem, &photo, &label);
    }
    Ok(set)
}

/// One photo (CHW RGB) and its class indices, both `side x side`.
fn load_pair(
    photo_path: &Path,
    mask_path: &Path,
    classes: &[ClassSpec],
    side: usize,
) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let photo = read_photo(photo_path)?;
    let (indices, width, height) = read_mask(mask_path, classes)?;
    if (photo.width(), photo.height()) != (width, height) {
        return Err(DataError::SizeMismatch {
            path: mask_path.into(),
            label: (width, height),
            photo_path: photo_path.into(),
            photo: (photo.width(), photo.height()),
        });
    }
    let photo = if (photo.width(), photo.height()) == (side as u32, side as u32) {
        photo
    } else {
        image::imageops::resize(&photo, side as u32, side as u32, FilterType::Triangle)
    };
    let label = resize_nearest(
        &LabelMap {
            width,
            height,
            indices,
        },
        side,
    );
    Ok((hwc_to_chw(&photo), label))
}

/// One mask file decoded to class indices ([`IGNORE_LABEL`] kept) with its (width, height): an
/// index map (palette or 8-bit grey PNG: pixel value = class index, 255 = ignore) or an
/// RGB/RGBA PNG using exactly the colours of `classes` (RGBA: alpha ignored).
pub fn read_mask(path: &Path, classes: &[ClassSpec]) -> Result<(Vec<u8>, u32, u32), DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.into() });
    }
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bad = |reason: String| DataError::BadLabelMap {
        path: path.into(),
        reason,
    };
    let mut decoder = png::Decoder::new(Cursor::new(&bytes[..]));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let reader = decoder
        .read_info()
        .map_err(|e| bad(format!("not a readable PNG ({e}); masks are PNG files")))?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let bits = info.bit_depth as u8;
    match (info.color_type, bits) {
        (png::ColorType::Indexed, _) | (png::ColorType::Grayscale, ..=8) => {
            let map = decode_label_map(path, &bytes)?;
            check_indices(path, &map, classes)?;
            let indices = map.indices;
            Ok((indices, width, height))
        }
        (png::ColorType::Grayscale, _) => Err(bad(format!(
            "{bits}-bit grey masks are not read: save it as an 8-bit grey or palette PNG whose pixel values are class indices"
        ))),
        (png::ColorType::GrayscaleAlpha, _) => Err(bad(
            "grey+alpha masks are not read: save it as an 8-bit grey or palette PNG (pixel value = class index) or as an RGB PNG in classes.json's colours".into(),
        )),
        (png::ColorType::Rgb | png::ColorType::Rgba, _) => {
            // The header is checked before a buffer is sized from it (see label_map's fuzz
            // finding).
            if width > MAX_LABEL_SIDE || height > MAX_LABEL_SIDE {
                return Err(bad(format!(
                    "mask is {width}x{height}, larger than the {MAX_LABEL_SIDE} pixels a side convlab reads"
                )));
            }
            let rgb = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
                .map_err(|e| bad(format!("corrupt PNG data: {e}")))?
                .to_rgb8();
            Ok((map_colours(path, &rgb, classes)?, width, height))
        }
    }
}

fn check_indices(path: &Path, map: &LabelMap, classes: &[ClassSpec]) -> Result<(), DataError> {
    let out_of_range = map
        .indices
        .iter()
        .position(|&v| v != IGNORE_LABEL && v as usize >= classes.len());
    match out_of_range {
        None => Ok(()),
        Some(i) => Err(DataError::ClassIndexOutOfRange {
            path: path.into(),
            x: i as u32 % map.width,
            y: i as u32 / map.width,
            value: map.indices[i],
            max: (classes.len() - 1) as u8,
        }),
    }
}

fn map_colours(
    path: &Path,
    rgb: &image::RgbImage,
    classes: &[ClassSpec],
) -> Result<Vec<u8>, DataError> {
    let class_of: HashMap<[u8; 3], u8> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.color, i as u8))
        .collect();
    rgb.enumerate_pixels()
        .map(|(x, y, px)| {
            class_of
                .get(&px.0)
                .copied()
                .ok_or(DataError::UnknownColour {
                    path: path.into(),
                    x,
                    y,
                    colour: px.0,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::label_map::tests::encode;

    const CLASSES: &str = r##"[
        {"name": "background", "color": "#000000"},
        {"name": "window", "color": "#FF8000"},
        {"name": "door", "color": "#0080ff"}
    ]"##;

    fn mkdirs(root: &Path, split: &str) {
        std::fs::create_dir_all(root.join(split).join("images")).unwrap();
        std::fs::create_dir_all(root.join(split).join("masks")).unwrap();
    }

    /// A photo whose pixel (x, y) is (10x, 10y, 7), saved as JPEG or PNG by the extension.
    fn write_photo(path: &Path, width: u32, height: u32) {
        image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([10 * x as u8, 10 * y as u8, 7])
        })
        .save_with_format(
            path,
            if path
                .extension()
                .unwrap()
                .to_str()
                .unwrap()
                .eq_ignore_ascii_case("png")
            {
                image::ImageFormat::Png
            } else {
                image::ImageFormat::Jpeg
            },
        )
        .unwrap();
    }

    fn write_index_mask(path: &Path, color: png::ColorType, width: u32, height: u32, data: &[u8]) {
        std::fs::write(
            path,
            encode(color, png::BitDepth::Eight, width, height, data),
        )
        .unwrap();
    }

    fn write_rgb_mask(path: &Path, width: u32, height: u32, colours: &[[u8; 3]]) {
        image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb(colours[(y * width + x) as usize])
        })
        .save(path)
        .unwrap();
    }

    /// classes.json plus one 3x2 pair `a` in train/.
    fn minimal_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("classes.json"), CLASSES).unwrap();
        mkdirs(root, "train");
        write_photo(&root.join("train/images/a.jpg"), 3, 2);
        write_index_mask(
            &root.join("train/masks/a.png"),
            png::ColorType::Grayscale,
            3,
            2,
            &[0, 1, 2, 255, 1, 0],
        );
        dir
    }

    fn load_err(root: &Path) -> String {
        load(root, 3).unwrap_err().to_string()
    }

    #[test]
    fn index_masks_load_with_ignore_kept_and_optional_splits() {
        let dir = minimal_folder();
        let root = dir.path();
        // A PNG photo in upper case with a palette mask, sorted after `a`.
        write_photo(&root.join("train/images/b.PNG"), 3, 3);
        let palette_values = [2, 2, 255, 0, 1, 0, 1, 1, 1];
        write_index_mask(
            &root.join("train/masks/b.png"),
            png::ColorType::Indexed,
            3,
            3,
            &palette_values,
        );
        // Resized only because `a` is 3x2; `b` (3x3) keeps its exact pixels.
        let folder = load(root, 3).unwrap();
        assert_eq!(folder.root, root);
        assert_eq!(folder.classes.len(), 3);
        assert_eq!(folder.classes[2].color, [0, 128, 255]);
        assert_eq!(folder.train.names, ["a", "b"]);
        assert_eq!(folder.train.side, 3);
        assert_eq!(folder.train.images.len(), 2 * 3 * 9);
        assert_eq!(folder.train.label(1), palette_values);
        let b = folder.train.image(1);
        // CHW: pixel (2, 1) is (20, 10, 7).
        assert_eq!((b[5], b[9 + 5], b[18 + 5]), (20, 10, 7));
        // `a` (3 wide, 2 high) stretched to 3x3 nearest-neighbour: source rows 0, 1, 1.
        assert_eq!(folder.train.label(0), [0, 1, 2, 255, 1, 0, 255, 1, 0]);
        assert!(folder.val.is_none() && folder.test.is_none());

        mkdirs(root, "val");
        write_photo(&root.join("val/images/v.jpeg"), 3, 3);
        write_index_mask(
            &root.join("val/masks/v.png"),
            png::ColorType::Grayscale,
            3,
            3,
            &[255; 9],
        );
        let folder = load(root, 3).unwrap();
        let val = folder.val.unwrap();
        assert_eq!(val.names, ["v"]);
        assert_eq!(val.label(0), [255; 9]);
        assert!(folder.test.is_none());

        mkdirs(root, "test");
        write_photo(&root.join("test/images/t.jpg"), 3, 3);
        write_index_mask(
            &root.join("test/masks/t.png"),
            png::ColorType::Grayscale,
            3,
            3,
            &[1; 9],
        );
        let folder = load(root, 3).unwrap();
        assert!(folder.val.is_some());
        assert_eq!(folder.test.unwrap().label(0), [1; 9]);
    }

    #[test]
    fn rgb_and_rgba_masks_are_mapped_by_colour() {
        let dir = tempfile::tempdir().unwrap();
        let classes = read_classes(&{
            let p = dir.path().join("classes.json");
            std::fs::write(&p, CLASSES).unwrap();
            p
        })
        .unwrap();
        let (black, orange, blue) = ([0, 0, 0], [255, 128, 0], [0, 128, 255]);
        let rgb = dir.path().join("rgb.png");
        write_rgb_mask(&rgb, 2, 2, &[blue, orange, black, blue]);
        assert_eq!(read_mask(&rgb, &classes).unwrap(), (vec![2, 1, 0, 2], 2, 2));

        let rgba = dir.path().join("rgba.png");
        image::RgbaImage::from_fn(3, 1, |x, _| {
            let [r, g, b] = [orange, black, blue][x as usize];
            image::Rgba([r, g, b, 40 * x as u8])
        })
        .save(&rgba)
        .unwrap();
        assert_eq!(read_mask(&rgba, &classes).unwrap(), (vec![1, 0, 2], 3, 1));
    }

    #[test]
    fn photos_and_masks_are_resized_to_side() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("classes.json"), CLASSES).unwrap();
        mkdirs(root, "train");
        image::RgbImage::from_pixel(4, 4, image::Rgb([50, 100, 150]))
            .save(root.join("train/images/p.png"))
            .unwrap();
        let mask: Vec<[u8; 3]> = (0..16)
            .map(|i| if i % 4 < 2 { [0, 0, 0] } else { [255, 128, 0] })
            .collect();
        write_rgb_mask(&root.join("train/masks/p.png"), 4, 4, &mask);
        let folder = load(root, 8).unwrap();
        let set = &folder.train;
        assert_eq!(
            (set.side, set.image(0).len(), set.label(0).len()),
            (8, 192, 64)
        );
        assert!(set.image(0)[..64].iter().all(|&v| v == 50));
        assert!(set.image(0)[128..].iter().all(|&v| v == 150));
        for row in set.label(0).chunks(8) {
            assert_eq!(row, [0, 0, 0, 0, 1, 1, 1, 1]);
        }
    }

    #[test]
    fn classes_json_errors_name_the_file_and_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.json");
        let err = read_classes(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not found", path.display()))
                && err.contains(r##""color": "#FF8000""##),
            "{err}"
        );

        let many: Vec<String> = (0..256)
            .map(|i| format!(r##"{{"name": "c{i}", "color": "#0000{:02X}"}}"##, i % 256))
            .collect();
        let many = format!("[{}]", many.join(","));
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            (
                r#"{"name": "a"}"#,
                "expected a JSON list of classes, found an object",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, 3]"##,
                "entry 1 is a number",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"color": "#FFFFFF"}]"##,
                "entry 1 has no \"name\"",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"name": "b"}]"##,
                "entry 1 (b) has no \"color\"",
            ),
            (
                r##"[{"name": "a", "colour": "#000000"}, {"name": "b"}]"##,
                "entry 0 (a) has no \"color\" (the key is spelt",
            ),
            (
                r##"[{"name": "a", "color": "#GG0000"}, {"name": "b", "color": "#FFFFFF"}]"##,
                "entry 0 (a): colour \"#GG0000\" is not #RRGGBB",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"name": "b", "color": "red"}]"##,
                "entry 1 (b): colour \"red\" is not #RRGGBB",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"name": "b", "color": 255}]"##,
                "entry 1 (b): \"color\" must be a string",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"name": "a", "color": "#FFFFFF"}]"##,
                "entry 1: name \"a\" is already entry 0's",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}, {"name": "", "color": "#FFFFFF"}]"##,
                "entry 1: \"name\" is empty",
            ),
            (
                r##"[{"name": "a", "color": "#ff8000"}, {"name": "b", "color": "#FF8000"}]"##,
                "entry 1 (b): colour #FF8000 is already entry 0's (a)",
            ),
            (
                r##"[{"name": "a", "color": "#000000"}]"##,
                "holds 1 class; segmentation needs at least 2",
            ),
            ("[]", "holds 0 classes"),
            (&many, "holds 256 classes, more than 255"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = read_classes(&path).unwrap_err();
            assert!(err.is_bad_input());
            let err = err.to_string();
            assert!(
                err.starts_with(&format!("{}: ", path.display())) && err.contains(expected),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn folder_errors_name_the_file() {
        let dir = minimal_folder();
        let root = dir.path();
        let train = root.join("train");
        assert!(load(root, 3).is_ok());
        let show = |p: PathBuf| p.display().to_string();

        std::fs::write(train.join("images/b.jpg"), b"not a jpeg").unwrap();
        std::fs::copy(train.join("masks/a.png"), train.join("masks/b.png")).unwrap();
        let err = load_err(root);
        assert!(
            err.starts_with(&format!(
                "{}: cannot decode image",
                show(train.join("images/b.jpg"))
            )),
            "{err}"
        );
        std::fs::remove_file(train.join("masks/b.png")).unwrap();
        let err = load_err(root);
        assert_eq!(
            err,
            format!(
                "{}: photo has no mask (expected {})",
                show(train.join("images/b.jpg")),
                show(train.join("masks/b.png"))
            )
        );
        std::fs::remove_file(train.join("images/b.jpg")).unwrap();

        std::fs::copy(train.join("masks/a.png"), train.join("masks/c.png")).unwrap();
        let err = load_err(root);
        assert_eq!(
            err,
            format!(
                "{}: mask has no photo (expected {}.jpg or .png)",
                show(train.join("masks/c.png")),
                show(train.join("images/c"))
            )
        );
        std::fs::remove_file(train.join("masks/c.png")).unwrap();

        write_photo(&train.join("images/a.png"), 3, 2);
        let err = load_err(root);
        assert!(
            err.starts_with(&show(train.join("images/a.png"))) && err.contains("a.jpg"),
            "{err}"
        );
        std::fs::remove_file(train.join("images/a.png")).unwrap();

        let mask = train.join("masks/a.png");
        write_index_mask(&mask, png::ColorType::Grayscale, 2, 2, &[0; 4]);
        let err = load_err(root);
        assert!(
            err.starts_with(&show(mask.clone())) && err.contains("2x2") && err.contains("3x2"),
            "{err}"
        );

        write_index_mask(&mask, png::ColorType::Grayscale, 3, 2, &[0, 1, 2, 0, 7, 0]);
        assert_eq!(
            load_err(root),
            format!(
                "{}: class index 7 at (1, 1) is out of range (0..=2, or 255 to ignore)",
                show(mask.clone())
            )
        );

        let black = [0, 0, 0];
        write_rgb_mask(
            &mask,
            3,
            2,
            &[black, black, black, black, black, [0x12, 0x34, 0x56]],
        );
        assert_eq!(
            load_err(root),
            format!(
                "{}: colour #123456 at (2, 1) is not one of classes.json's colours",
                show(mask.clone())
            )
        );

        let sixteen = encode(
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            3,
            2,
            &[0; 12],
        );
        std::fs::write(&mask, sixteen).unwrap();
        let err = load_err(root);
        assert!(
            err.starts_with(&format!(
                "{}: 16-bit grey masks are not read",
                show(mask.clone())
            )),
            "{err}"
        );

        std::fs::write(&mask, b"not a png").unwrap();
        let err = load_err(root);
        assert!(
            err.starts_with(&format!("{}: not a readable PNG", show(mask.clone()))),
            "{err}"
        );

        std::fs::remove_file(&mask).unwrap();
        std::fs::remove_file(train.join("images/a.jpg")).unwrap();
        std::fs::write(train.join("images/notes.txt"), b"not a photo").unwrap();
        assert_eq!(
            load_err(root),
            format!(
                "{}: no photos (.jpg, .jpeg or .png) in this folder",
                show(train.join("images"))
            )
        );

        std::fs::remove_dir_all(train.join("masks")).unwrap();
        let err = load_err(root);
        assert!(
            err.starts_with(&format!("{}: not found", show(train.join("masks")))),
            "{err}"
        );

        std::fs::remove_dir_all(&train).unwrap();
        let err = load_err(root);
        assert!(
            err.starts_with(&format!("{}: not found", show(train.clone())))
                && err.contains("train/images/"),
            "{err}"
        );

        std::fs::remove_file(root.join("classes.json")).unwrap();
        let err = load(root, 3).unwrap_err();
        assert!(err.is_bad_input());
        assert!(
            err.to_string()
                .starts_with(&format!("{}: not found", show(root.join("classes.json")))),
            "{err}"
        );
    }

    #[test]
    fn a_broken_val_split_is_reported() {
        let dir = minimal_folder();
        let root = dir.path();
        mkdirs(root, "val");
        let err = load_err(root);
        assert!(
            err.starts_with(&format!("{}: no photos", root.join("val/images").display())),
            "{err}"
        );
    }
}
