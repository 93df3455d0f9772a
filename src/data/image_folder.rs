//! Classification data laid out as torchvision's `ImageFolder` expects: one folder per class
//! (`DIR/<class>/*.png`), or the same under `DIR/train/` with optional `DIR/val/` and
//! `DIR/test/` beside it. Every image is decoded once, in parallel, into [`LabelledImages`].

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use super::{DataError, LabelledImages};

/// Labels are bytes, and 255 is kept free as the "ignore" value other data sets use.
pub const MAX_CLASSES: usize = 255;

/// Extensions (compared case-insensitively) of the files read as images; others are skipped,
/// as torchvision does, so README files or thumbnails databases beside the images do no harm.
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// How the folder is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderLayout {
    /// `DIR/<class>/*`
    ClassFolders,
    /// `DIR/train/<class>/*`, with optional `DIR/val/<class>/*` and `DIR/test/<class>/*`.
    Splits,
}

/// A class-folder data set, decoded once into memory.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub layout: FolderLayout,
    /// Folder names in sorted order: class i is class_names[i].
    pub class_names: Vec<String>,
    pub train: LabelledImages,
    /// Some only when `DIR/val` exists (Splits layout).
    pub val: Option<LabelledImages>,
    /// Some only when `DIR/test` exists (Splits layout).
    pub test: Option<LabelledImages>,
    /// Each split's image files, in the same order as its images (for figures and predictions).
    pub train_files: Vec<PathBuf>,
    pub val_files: Vec<PathBuf>,
    pub test_files: Vec<PathBuf>,
}

/// How images are turned into tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Resize every image to size x size (triangle filter); None: keep the images' own size,
    /// which must be the same for all.
    pub size: Option<usize>,
    /// Force 1 (grey) or 3 (RGB) channels (when evaluating a run trained with that many);
    /// None: 1 when every TRAINING image is grey, else 3.
    pub channels: Option<usize>,
}

/// Reads the class folders under `root` and decodes every image (see [`FolderLayout`] for the
/// two layouts). Classes are the sorted folder names; within a class, files are in name order.
pub fn load(root: &Path, options: FolderOptions) -> Result<ImageFolder, DataError> {
    check_folder(root)?;
    let layout = if root.join("train").is_dir() {
        FolderLayout::Splits
    } else {
        FolderLayout::ClassFolders
    };
    let train_dir = match layout {
        FolderLayout::ClassFolders => root.to_path_buf(),
        FolderLayout::Splits => root.join("train"),
    };
    let classes = class_folders(&train_dir)?;
    if classes.len() < 2 {
        return Err(DataError::TooFewClasses {
            path: train_dir,
            found: classes.len(),
        });
    }
    if classes.len() > MAX_CLASSES {
        return Err(DataError::TooManyClasses {
            path: train_dir,
            found: classes.len(),
            max: MAX_CLASSES,
        });
    }
    let class_names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
    let mut train = SplitFiles::default();
    for (label, class) in classes.iter().enumerate() {
        train.push_class(label as u8, image_files(&class.path)?);
    }
    let (val, test) = match layout {
        FolderLayout::ClassFolders => (None, None),
        FolderLayout::Splits => (
            optional_split(&root.join("val"), &class_names)?,
            optional_split(&root.join("test"), &class_names)?,
        ),
    };

    // One pass over every split's files, so the thread pool and the progress bar see all of it.
    let all_files: Vec<&PathBuf> = [Some(&train), val.as_ref(), test.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|split| &split.files)
        .collect();
    let bar = crate::progress::count_bar(all_files.len(), &format!("loading {}", root.display()));
    let decoded = all_files
        .par_iter()
        .map(|path| {
            let image = Decoded::read(path, options.size);
            bar.inc(1);
            image
        })
        .collect::<Result<Vec<_>, _>>();
    bar.finish_and_clear();
    let decoded = decoded?;

    let (width, height) = decoded[0].size();
    if options.size.is_none()
        && let Some((path, image)) = all_files
            .iter()
            .zip(&decoded)
            .find(|(_, image)| image.size() != (width, height))
    {
        return Err(DataError::MixedImageSizes {
            path: path.to_path_buf(),
            size: image.size(),
            first: all_files[0].clone(),
            first_size: (width, height),
        });
    }
    let channels = options.channels.unwrap_or_else(|| {
        let all_grey = decoded[..train.len()]
            .iter()
            .all(|image| matches!(image, Decoded::Grey(_)));
        if all_grey { 1 } else { 3 }
    });

    let (train_images, rest) = decoded.split_at(train.len());
    let val_count = val.as_ref().map_or(0, SplitFiles::len);
    let (val_images, test_images) = rest.split_at(val_count);
    let assemble =
        |images: &[Decoded], labels: Vec<u8>| assemble(images, labels, channels, height, width);
    let val_files = val.as_ref().map(|v| v.files.clone()).unwrap_or_default();
    let test_files = test.as_ref().map(|t| t.files.clone()).unwrap_or_default();
    Ok(ImageFolder {
        root: root.to_path_buf(),
        layout,
        class_names,
        train: assemble(train_images, train.labels),
        val: val.map(|v| assemble(val_images, v.labels)),
        test: test.map(|t| assemble(test_images, t.labels)),
        train_files: train.files,
        val_files,
        test_files,
    })
}

/// Decodes one image file of any colour type (grey, grey+alpha, RGB, RGBA, palette, 16-bit
/// PNG; JPEG) exactly as training prepares it: converted to `channels` (1: luma, 3: RGB; alpha
/// dropped), resized to `size` x `size` when given (triangle filter, only when the size
/// differs), returned as CHW u8 with its (height, width).
pub fn read_image(
    path: &Path,
    channels: usize,
    size: Option<usize>,
) -> Result<(Vec<u8>, usize, usize), DataError> {
    if path.is_dir() {
        return Err(DataError::IsDirectory { path: path.into() });
    }
    let image = Decoded::read(path, size)?;
    let (width, height) = image.size();
    let mut chw = vec![0u8; channels * height * width];
    image.write_chw(channels, &mut chw);
    Ok((chw, height, width))
}

/// One image at its final size, kept grey or colour as the file is, since the channel count of
/// the data set is only known once every training image has been seen.
enum Decoded {
    Grey(GrayImage),
    Colour(RgbImage),
}

impl Decoded {
    fn read(path: &Path, size: Option<usize>) -> Result<Self, DataError> {
        let image = image::ImageReader::open(path)
            .map_err(|e| DataError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?
            .decode()
            .map_err(|e| DataError::BadImage {
                path: path.into(),
                reason: e.to_string(),
            })?;
        let resize = |w: u32, h: u32| size.filter(|&s| (w as usize, h as usize) != (s, s));
        Ok(if image.color().has_color() {
            let rgb = image.into_rgb8();
            match resize(rgb.width(), rgb.height()) {
                Some(s) => Decoded::Colour(image::imageops::resize(
                    &rgb,
                    s as u32,
                    s as u32,
                    FilterType::Triangle,
                )),
                None => Decoded::Colour(rgb),
            }
        } else {
            let grey = image.into_luma8();
            match resize(grey.width(), grey.height()) {
                Some(s) => Decoded::Grey(image::imageops::resize(
                    &grey,
                    s as u32,
                    s as u32,
                    FilterType::Triangle,
                )),
                None => Decoded::Grey(grey),
            }
        })
    }

    /// Width and height.
    fn size(&self) -> (usize, usize) {
        let (w, h) = match self {
            Decoded::Grey(g) => g.dimensions(),
            Decoded::Colour(c) => c.dimensions(),
        };
        (w as usize, h as usize)
    }

    /// Writes the image as `channels` planes (1: luma, 3: RGB) into `out`.
    fn write_chw(&self, channels: usize, out: &mut [u8]) {
        assert!(
            matches!(channels, 1 | 3),
            "images have 1 or 3 channels, not {channels}"
        );
        match (self, channels) {
            (Decoded::Grey(grey), 1) => out.copy_from_slice(grey.as_raw()),
            (Decoded::Grey(grey), _) => {
                for plane in out.chunks_exact_mut(grey.as_raw().len()) {
                    plane.copy_from_slice(grey.as_raw());
                }
            }
            (Decoded::Colour(rgb), 1) => {
                out.copy_from_slice(image::imageops::grayscale(rgb).as_raw())
            }
            (Decoded::Colour(rgb), _) => {
                let plane = out.len() / 3;
                for (i, pixel) in rgb.pixels().enumerate() {
                    for (c, &value) in pixel.0.iter().enumerate() {
                        out[c * plane + i] = value;
                    }
                }
            }
        }
    }
}

fn assemble(
    images: &[Decoded],
    labels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
) -> LabelledImages {
    let image_len = channels * height * width;
    let mut pixels = vec![0u8; images.len() * image_len];
    pixels
        .par_chunks_mut(image_len.max(1))
        .zip(images.par_iter())
        .for_each(|(out, image)| image.write_chw(channels, out));
    LabelledImages {
        pixels,
        labels,
        channels,
        height,
        width,
    }
}

/// A split's image files, class by class, with each file's label.
#[derive(Default)]
struct SplitFiles {
    files: Vec<PathBuf>,
    labels: Vec<u8>,
}

impl SplitFiles {
    fn push_class(&mut self, label: u8, files: Vec<PathBuf>) {
        self.labels.extend(std::iter::repeat_n(label, files.len()));
        self.files.extend(files);
    }

    fn len(&self) -> usize {
        self.files.len()
    }
}

/// `val/` or `test/`: its class folders must all be training classes, though it may lack some.
fn optional_split(dir: &Path, class_names: &[String]) -> Result<Option<SplitFiles>, DataError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let classes = class_folders(dir)?;
    if classes.is_empty() {
        return Err(DataError::NoClassFolders { path: dir.into() });
    }
    let mut split = SplitFiles::default();
    for class in classes {
        let label =
            class_names
                .binary_search(&class.name)
                .map_err(|_| DataError::UnknownClass {
                    path: class.path.clone(),
                    name: class.name.clone(),
                    known: class_names.to_vec(),
                })?;
        split.push_class(label as u8, image_files(&class.path)?);
    }
    Ok(Some(split))
}

fn check_folder(dir: &Path) -> Result<(), DataError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(DataError::NotAFolder { path: dir.into() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(DataError::FolderNotFound { path: dir.into() })
        }
        Err(e) => Err(DataError::io(dir, e)),
    }
}

struct Entry {
    name: String,
    path: PathBuf,
    is_dir: bool,
}

/// The entries of `dir` not starting with '.', sorted by name.
fn visible_entries(dir: &Path) -> Result<Vec<Entry>, DataError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        // Symbolic links are followed, as torchvision does; only they cost an extra stat.
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        entries.push(Entry { name, path, is_dir });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn class_folders(dir: &Path) -> Result<Vec<Entry>, DataError> {
    Ok(visible_entries(dir)?
        .into_iter()
        .filter(|e| e.is_dir)
        .collect())
}

fn image_files(class_dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let files: Vec<PathBuf> = visible_entries(class_dir)?
        .into_iter()
        .filter(|e| !e.is_dir && is_image_name(&e.name))
        .map(|e| e.path)
        .collect();
    if files.is_empty() {
        return Err(DataError::EmptyClass {
            path: class_dir.into(),
        });
    }
    Ok(files)
}

fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn grey(path: &Path, side: u32, value: u8) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_pixel(side, side, image::Luma([value]))
            .save(path)
            .unwrap();
    }

    fn rgb(path: &Path, side: u32, value: [u8; 3]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        RgbImage::from_pixel(side, side, image::Rgb(value))
            .save(path)
            .unwrap();
    }

    /// A PNG of any colour type and depth written with the `png` crate, byte for byte.
    fn raw_png(
        path: &Path,
        color: png::ColorType,
        depth: png::BitDepth,
        side: u32,
        palette: Option<Vec<u8>>,
        data: &[u8],
    ) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = fs::File::create(path).unwrap();
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
        encoder.set_color(color);
        encoder.set_depth(depth);
        if let Some(palette) = palette {
            encoder.set_palette(palette);
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
    }

    fn error(root: &Path, options: FolderOptions) -> String {
        let err = load(root, options).unwrap_err();
        assert!(err.is_bad_input());
        err.to_string()
    }

    fn names(files: &[PathBuf], root: &Path) -> Vec<String> {
        files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn class_folders_are_sorted_and_labelled_class_by_class() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("dog/2.png"), 4, 20);
        grey(&root.join("dog/10.png"), 4, 21);
        grey(&root.join("cat/b.PNG"), 4, 10);
        grey(&root.join("cat/a.png"), 4, 11);
        grey(&root.join("Ant/x.jpeg"), 4, 0);
        grey(&root.join("Ant/y.JPG"), 4, 0);
        fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
        fs::write(root.join("cat/.hidden.png"), "not an image either").unwrap();
        grey(&root.join(".cache/z.png"), 4, 99);
        fs::write(root.join("README.md"), "a file beside the classes").unwrap();

        let set = load(root, FolderOptions::default()).unwrap();
        assert_eq!(set.layout, FolderLayout::ClassFolders);
        assert_eq!(set.root, root);
        assert_eq!(set.class_names, ["Ant", "cat", "dog"]);
        assert_eq!(
            names(&set.train_files, root),
            [
                "Ant/x.jpeg",
                "Ant/y.JPG",
                "cat/a.png",
                "cat/b.PNG",
                "dog/10.png",
                "dog/2.png"
            ]
        );
        assert_eq!(set.train.labels, [0, 0, 1, 1, 2, 2]);
        assert_eq!(
            (set.train.channels, set.train.height, set.train.width),
            (1, 4, 4)
        );
        assert_eq!(set.train.pixels.len(), 6 * 16);
        let first_pixels: Vec<u8> = (2..6).map(|i| set.train.image(i)[0]).collect();
        assert_eq!(first_pixels, [11, 10, 21, 20]);
        assert!(set.train.image(2).iter().all(|&v| v == 11));
        assert!(set.val.is_none() && set.test.is_none());
        assert!(set.val_files.is_empty() && set.test_files.is_empty());
    }

    #[test]
    fn splits_read_val_and_test_with_the_training_labels() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (class, value) in [("a", 1), ("b", 2), ("c", 3)] {
            grey(&root.join(format!("train/{class}/0.png")), 3, value);
            grey(&root.join(format!("train/{class}/1.png")), 3, value);
        }
        // val lacks class a, which is allowed.
        grey(&root.join("val/c/0.png"), 3, 3);
        grey(&root.join("val/b/0.png"), 3, 2);
        grey(&root.join("test/a/0.png"), 3, 1);

        let set = load(root, FolderOptions::default()).unwrap();
        assert_eq!(set.layout, FolderLayout::Splits);
        assert_eq!(set.class_names, ["a", "b", "c"]);
        assert_eq!(set.train.labels, [0, 0, 1, 1, 2, 2]);
        let val = set.val.as_ref().unwrap();
        assert_eq!(val.labels, [1, 2]);
        assert_eq!(names(&set.val_files, root), ["val/b/0.png", "val/c/0.png"]);
        assert_eq!(val.image(1), [3; 9]);
        let test = set.test.as_ref().unwrap();
        assert_eq!(test.labels, [0]);
        assert_eq!(names(&set.test_files, root), ["test/a/0.png"]);
        assert_eq!((test.channels, test.height, test.width), (1, 3, 3));
    }

    #[test]
    fn splits_without_val_or_test_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("train/a/0.png"), 2, 1);
        grey(&root.join("train/b/0.png"), 2, 2);
        // A file named like a split is not a split.
        fs::write(root.join("val"), "").unwrap();

        let set = load(root, FolderOptions::default()).unwrap();
        assert_eq!(set.layout, FolderLayout::Splits);
        assert!(set.val.is_none() && set.test.is_none());
        assert!(set.val_files.is_empty() && set.test_files.is_empty());
        assert_eq!(set.train.labels, [0, 1]);

        grey(&root.join("test/b/0.png"), 2, 2);
        let set = load(root, FolderOptions::default()).unwrap();
        assert!(set.val.is_none());
        assert_eq!(set.test.unwrap().labels, [1]);
    }

    #[test]
    fn one_colour_training_image_makes_every_split_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("train/a/0.png"), 2, 7);
        rgb(&root.join("train/b/0.png"), 2, [10, 20, 30]);
        grey(&root.join("val/a/0.png"), 2, 8);

        let set = load(root, FolderOptions::default()).unwrap();
        assert_eq!(set.train.channels, 3);
        assert_eq!(set.train.image(0), [7; 12]);
        assert_eq!(
            set.train.image(1),
            [10, 10, 10, 10, 20, 20, 20, 20, 30, 30, 30, 30]
        );
        let val = set.val.unwrap();
        assert_eq!(val.channels, 3);
        assert_eq!(val.image(0), [8; 12]);
    }

    #[test]
    fn colour_in_val_alone_keeps_grey_training_data_grey() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("train/a/0.png"), 2, 7);
        grey(&root.join("train/b/0.png"), 2, 9);
        rgb(&root.join("val/a/0.png"), 2, [10, 20, 30]);

        let set = load(root, FolderOptions::default()).unwrap();
        assert_eq!(set.train.channels, 1);
        let val = set.val.unwrap();
        assert_eq!(val.channels, 1);
        let (luma, _, _) = read_image(&root.join("val/a/0.png"), 1, None).unwrap();
        assert_eq!(val.image(0), luma);
    }

    #[test]
    fn palette_sixteen_bit_grey_alpha_and_rgba_pngs_decode() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let palette = root.join("palette.png");
        raw_png(
            &palette,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            2,
            Some(vec![255, 0, 0, 0, 0, 255]),
            &[0, 1, 1, 0],
        );
        let (chw, h, w) = read_image(&palette, 3, None).unwrap();
        assert_eq!((h, w), (2, 2));
        assert_eq!(chw, [255, 0, 0, 255, 0, 0, 0, 0, 0, 255, 255, 0]);

        let deep = root.join("deep.png");
        let values: Vec<u8> = [0u16, 0xffff, 0x8080, 0x0101]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        raw_png(
            &deep,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            2,
            None,
            &values,
        );
        assert_eq!(read_image(&deep, 1, None).unwrap().0, [0, 255, 128, 1]);

        let grey_alpha = root.join("grey_alpha.png");
        raw_png(
            &grey_alpha,
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            1,
            None,
            &[77, 0],
        );
        assert_eq!(read_image(&grey_alpha, 1, None).unwrap().0, [77]);

        let rgba = root.join("rgba.png");
        raw_png(
            &rgba,
            png::ColorType::Rgba,
            png::BitDepth::Eight,
            1,
            None,
            &[1, 2, 3, 0],
        );
        assert_eq!(read_image(&rgba, 3, None).unwrap(), (vec![1, 2, 3], 1, 1));

        // In a data set: 16-bit grey and grey+alpha count as grey, palette and RGBA as colour.
        let grey_root = root.join("grey_set");
        for (class, source) in [("a", &deep), ("b", &grey_alpha)] {
            fs::create_dir_all(grey_root.join(class)).unwrap();
            fs::copy(source, grey_root.join(class).join("0.png")).unwrap();
        }
        let options = FolderOptions {
            size: Some(2),
            channels: None,
        };
        assert_eq!(load(&grey_root, options).unwrap().train.channels, 1);
        let colour_root = root.join("colour_set");
        for (class, source) in [("a", &palette), ("b", &rgba), ("c", &deep)] {
            fs::create_dir_all(colour_root.join(class)).unwrap();
            fs::copy(source, colour_root.join(class).join("0.png")).unwrap();
        }
        let set = load(&colour_root, options).unwrap();
        assert_eq!(set.train.channels, 3);
        assert_eq!(
            set.train.image(1),
            [1; 4]
                .iter()
                .chain(&[2; 4])
                .chain(&[3; 4])
                .copied()
                .collect::<Vec<_>>()
        );
        assert_eq!(set.train.image(0), read_image(&palette, 3, None).unwrap().0);
    }

    #[test]
    fn jpeg_decodes_grey_and_colour() {
        let dir = tempfile::tempdir().unwrap();
        let grey_path = dir.path().join("g.jpg");
        grey(&grey_path, 8, 100);
        let (chw, h, w) = read_image(&grey_path, 1, None).unwrap();
        assert_eq!((chw.len(), h, w), (64, 8, 8));
        assert!(chw.iter().all(|&v| v.abs_diff(100) <= 2));
        let colour_path = dir.path().join("c.jpeg");
        rgb(&colour_path, 8, [200, 40, 40]);
        let (chw, _, _) = read_image(&colour_path, 3, None).unwrap();
        assert!(chw[..64].iter().all(|&v| v.abs_diff(200) <= 6));
        assert!(chw[64..].iter().all(|&v| v.abs_diff(40) <= 6));
    }

    #[test]
    fn size_resizes_every_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("a/big.png"), 10, 50);
        grey(&root.join("a/small.png"), 3, 60);
        grey(&root.join("b/exact.png"), 5, 70);
        rgb(&root.join("b/wide.png"), 7, [1, 2, 3]);

        let options = FolderOptions {
            size: Some(5),
            channels: None,
        };
        let set = load(root, options).unwrap();
        assert_eq!(
            (set.train.channels, set.train.height, set.train.width),
            (3, 5, 5)
        );
        assert_eq!(set.train.pixels.len(), 4 * 3 * 25);
        assert!(set.train.image(0).iter().all(|&v| v == 50));
        assert!(set.train.image(1).iter().all(|&v| v == 60));
        assert!(set.train.image(2).iter().all(|&v| v == 70));
        assert!(set.train.image(3)[50..].iter().all(|&v| v == 3));
        let (chw, h, w) = read_image(&root.join("a/big.png"), 1, Some(5)).unwrap();
        assert_eq!((chw, h, w), (vec![50; 25], 5, 5));
    }

    #[test]
    fn forced_channels_override_the_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("a/0.png"), 2, 9);
        rgb(&root.join("b/0.png"), 4, [200, 100, 0]);

        let options = FolderOptions {
            size: Some(3),
            channels: Some(1),
        };
        let set = load(root, options).unwrap();
        assert_eq!(set.train.channels, 1);
        assert_eq!(set.train.image(0), [9; 9]);
        // Training and prediction prepare an image the same way: resized, then made grey.
        let (luma, _, _) = read_image(&root.join("b/0.png"), 1, Some(3)).unwrap();
        assert_eq!(set.train.image(1), luma);
        let expected =
            image::imageops::grayscale(&RgbImage::from_pixel(1, 1, image::Rgb([200, 100, 0])))
                .into_raw()[0];
        assert_eq!(luma, [expected; 9]);

        let options = FolderOptions {
            size: Some(3),
            channels: Some(3),
        };
        let set = load(root, options).unwrap();
        assert_eq!(set.train.channels, 3);
        assert_eq!(set.train.image(0), [9; 27]);
    }

    #[test]
    fn missing_root_and_file_root_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let message = error(&missing, FolderOptions::default());
        assert!(message.starts_with(&missing.display().to_string()));
        assert!(message.contains("not found"), "{message}");

        let file = dir.path().join("file.png");
        grey(&file, 1, 0);
        let message = error(&file, FolderOptions::default());
        assert!(message.starts_with(&file.display().to_string()));
        assert!(message.contains("expected a folder"), "{message}");
    }

    #[test]
    fn empty_class_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("a/0.png"), 1, 0);
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/readme.txt"), "").unwrap();
        let message = error(root, FolderOptions::default());
        assert_eq!(
            message,
            format!(
                "{}: class folder has no images (.png, .jpg, .jpeg)",
                root.join("b").display()
            )
        );

        let splits = root.join("splits");
        grey(&splits.join("train/a/0.png"), 1, 0);
        grey(&splits.join("train/b/0.png"), 1, 0);
        fs::create_dir_all(splits.join("test/b")).unwrap();
        let message = error(&splits, FolderOptions::default());
        assert!(
            message.starts_with(&format!(
                "{}: class folder has no images",
                splits.join("test/b").display()
            )),
            "{message}"
        );
    }

    #[test]
    fn unknown_val_class_lists_the_training_classes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in ["a", "b", "c"] {
            grey(&root.join(format!("train/{class}/0.png")), 1, 0);
        }
        grey(&root.join("val/a/0.png"), 1, 0);
        grey(&root.join("val/zebra/0.png"), 1, 0);
        let message = error(root, FolderOptions::default());
        assert_eq!(
            message,
            format!(
                "{}: class 'zebra' is not among the training classes (train/ has: a, b, c)",
                root.join("val/zebra").display()
            )
        );
    }

    #[test]
    fn split_without_class_folders_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("train/a/0.png"), 1, 0);
        grey(&root.join("train/b/0.png"), 1, 0);
        grey(&root.join("val/0.png"), 1, 0);
        let message = error(root, FolderOptions::default());
        assert!(
            message.starts_with(&format!("{}: no class folders", root.join("val").display())),
            "{message}"
        );
    }

    #[test]
    fn fewer_than_two_classes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let message = error(root, FolderOptions::default());
        assert_eq!(
            message,
            format!(
                "{}: found 0 class folder(s); classification needs at least two (DIR/<class>/*.png or DIR/train/<class>/*.png)",
                root.display()
            )
        );
        grey(&root.join("only/0.png"), 1, 0);
        let message = error(root, FolderOptions::default());
        assert!(message.contains("found 1 class folder(s)"), "{message}");

        grey(&root.join("train/only/0.png"), 1, 0);
        let message = error(root, FolderOptions::default());
        assert!(
            message.starts_with(&format!(
                "{}: found 1 class folder(s)",
                root.join("train").display()
            )),
            "{message}"
        );
    }

    #[test]
    fn more_classes_than_labels_hold_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for class in 0..=MAX_CLASSES {
            // Never decoded: the count is checked first.
            fs::create_dir_all(root.join(format!("{class:03}"))).unwrap();
        }
        let message = error(root, FolderOptions::default());
        assert!(
            message.starts_with(&root.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("found 256 class folders; at most 255"),
            "{message}"
        );
    }

    #[test]
    fn undecodable_image_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("a/0.png"), 1, 0);
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/broken.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
        let message = error(root, FolderOptions::default());
        assert!(
            message.starts_with(&format!(
                "{}: cannot decode image",
                root.join("b/broken.png").display()
            )),
            "{message}"
        );
        let err = read_image(&root.join("b/broken.png"), 1, None).unwrap_err();
        assert!(matches!(err, DataError::BadImage { .. }));
        let err = read_image(&root.join("a"), 1, None).unwrap_err();
        assert!(matches!(err, DataError::IsDirectory { .. }));
    }

    #[test]
    fn mixed_sizes_without_size_suggest_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        grey(&root.join("train/a/0.png"), 4, 0);
        grey(&root.join("train/b/0.png"), 4, 0);
        grey(&root.join("test/b/0.png"), 5, 0);
        let message = error(root, FolderOptions::default());
        assert_eq!(
            message,
            format!(
                "{}: image is 5x5 but {} is 4x4; pass --size N to resize every image to N x N",
                root.join("test/b/0.png").display(),
                root.join("train/a/0.png").display()
            )
        );
        let options = FolderOptions {
            size: Some(4),
            channels: None,
        };
        assert_eq!(load(root, options).unwrap().test.unwrap().height, 4);
    }

    /// Loading speed on 60,000 28x28 grey PNGs (Fashion-MNIST's size):
    /// `cargo test --lib data::image_folder -- --ignored --nocapture`.
    #[test]
    #[ignore = "writes 60,000 files; a measurement, not a check"]
    fn sixty_thousand_small_pngs_load_in_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        (0..60_000u32).into_par_iter().for_each(|i| {
            let class = i % 10;
            let pixels: Vec<u8> = (0..28 * 28u32).map(|p| ((p * 7 + i) % 256) as u8).collect();
            let image = GrayImage::from_raw(28, 28, pixels).unwrap();
            let class_dir = root.join(format!("class_{class}"));
            fs::create_dir_all(&class_dir).unwrap();
            image.save(class_dir.join(format!("{i:05}.png"))).unwrap();
        });
        let start = std::time::Instant::now();
        let set = load(root, FolderOptions::default()).unwrap();
        let elapsed = start.elapsed();
        assert_eq!((set.train.len(), set.train.channels), (60_000, 1));
        eprintln!("loaded 60,000 28x28 PNGs in {elapsed:?}");
    }
}
