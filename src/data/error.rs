use std::path::PathBuf;

/// Everything that can be wrong with data on disk. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: is a directory, expected a file", path.display())]
    IsDirectory { path: PathBuf },
    #[error("{}: folder not found", path.display())]
    FolderNotFound { path: PathBuf },
    #[error("{}: is a file, expected a folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("{}: class folder has no images (.png, .jpg, .jpeg)", path.display())]
    EmptyClass { path: PathBuf },
    #[error("{}: no class folders (expected {}/<class>/*.png)", path.display(), path.display())]
    NoClassFolders { path: PathBuf },
    #[error("{}: class '{name}' is not among the training classes (train/ has: {})", path.display(), known.join(", "))]
    UnknownClass {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
    #[error("{}: found {found} class folder(s); classification needs at least two (DIR/<class>/*.png or DIR/train/<class>/*.png)", path.display())]
    TooFewClasses { path: PathBuf, found: usize },
    #[error("{}: found {found} class folders; at most {max} are supported (labels are stored as bytes)", path.display())]
    TooManyClasses {
        path: PathBuf,
        found: usize,
        max: usize,
    },
    #[error("{}: image is {}x{} but {} is {}x{}; pass --size N to resize every image to N x N", path.display(), size.0, size.1, first.display(), first_size.0, first_size.1)]
    MixedImageSizes {
        path: PathBuf,
        /// Width and height.
        size: (usize, usize),
        first: PathBuf,
        first_size: (usize, usize),
    },
    #[error("{}: corrupt gzip data: {reason}", path.display())]
    CorruptGzip { path: PathBuf, reason: String },
    #[error("{}: not an IDX {kind} file: magic number is 0x{found:08x}, expected 0x{expected:08x}", path.display())]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("{}: not found: {hint}", path.display())]
    MissingFile { path: PathBuf, hint: String },
    #[error("{}: file is empty", path.display())]
    EmptyFile { path: PathBuf },
    #[error("{}: truncated: {found} bytes, shorter than the {expected}-byte IDX header", path.display())]
    ShortHeader {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{}: payload is {found} bytes but the header announces {expected}", path.display())]
    WrongLength {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{}: images are {rows}x{cols}, expected {expected_rows}x{expected_cols}", path.display())]
    WrongDimensions {
        path: PathBuf,
        rows: usize,
        cols: usize,
        expected_rows: usize,
        expected_cols: usize,
    },
    #[error("{}: label {label} at index {index} is out of range (0..{classes})", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error("{}: holds {images} images but {} holds {labels} labels", images_path.display(), labels_path.display())]
    CountMismatch {
        images_path: PathBuf,
        labels_path: PathBuf,
        images: usize,
        labels: usize,
    },
    #[error("{}: SHA-256 of the decompressed data is {found}, expected {expected} (damaged or a different file)", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{name}: data set not found (looked in {})\nhint: {hint}", tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFound {
        name: &'static str,
        tried: Vec<PathBuf>,
        hint: String,
    },
    #[error("{url}: download failed: {reason}\nhint: {hint}")]
    Download {
        url: String,
        reason: String,
        hint: String,
    },
    #[error("{}: {what} (expected {})", path.display(), missing.display())]
    MissingPair {
        path: PathBuf,
        missing: PathBuf,
        what: &'static str,
    },
    #[error("{}: no photo/label pairs in this folder", path.display())]
    EmptySplit { path: PathBuf },
    #[error("{}: label map is {}x{} but its photo {} is {}x{}", path.display(), label.0, label.1, photo_path.display(), photo.0, photo.1)]
    SizeMismatch {
        path: PathBuf,
        label: (u32, u32),
        photo_path: PathBuf,
        photo: (u32, u32),
    },
    #[error("{}: label value {value} at ({x}, {y}) is out of range (0..={max})", path.display())]
    BadLabelValue {
        path: PathBuf,
        x: u32,
        y: u32,
        value: u8,
        max: u8,
    },
    #[error("{}: {reason}", path.display())]
    BadLabelMap { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    BadClasses { path: PathBuf, reason: String },
    #[error("{}: no photos (.jpg, .jpeg or .png) in this folder", path.display())]
    NoPhotos { path: PathBuf },
    #[error("{}: mask has no photo (expected {}.jpg or .png)", path.display(), expected_stem.display())]
    MaskWithoutPhoto {
        path: PathBuf,
        expected_stem: PathBuf,
    },
    #[error("{}: has the same stem as {}; keep one (photos and masks pair by stem)", path.display(), other.display())]
    DuplicateStem { path: PathBuf, other: PathBuf },
    #[error("{}: class index {value} at ({x}, {y}) is out of range (0..={max}, or 255 to ignore)", path.display())]
    ClassIndexOutOfRange {
        path: PathBuf,
        x: u32,
        y: u32,
        value: u8,
        max: u8,
    },
    #[error("{}: colour #{:02X}{:02X}{:02X} at ({x}, {y}) is not one of classes.json's colours", path.display(), colour[0], colour[1], colour[2])]
    UnknownColour {
        path: PathBuf,
        x: u32,
        y: u32,
        colour: [u8; 3],
    },
    #[error("{}: cannot decode image: {reason}", path.display())]
    BadImage { path: PathBuf, reason: String },
    #[error("--limit {limit}: larger than the {available} training images available")]
    LimitTooLarge { limit: usize, available: usize },
    #[error("{}: the data no longer matches the run: {reason}", path.display())]
    DataChanged { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Unsuitable { path: PathBuf, reason: String },
    #[error("--data: give {what}")]
    FolderRequired { what: &'static str },
}

impl DataError {
    /// Input errors the user can fix (all of them, except a failed download).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, DataError::Download { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
