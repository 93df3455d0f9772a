//! Fashion-MNIST: the four IDX files, their checksums, where to find them, and fetching them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{DataError, LabelledImages, idx, locate};

pub const CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
pub const NUM_CLASSES: usize = 10;
pub const SIDE: usize = 28;
const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
const UPSTREAM: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/// One of the four files: its base name and the SHA-256 of its decompressed payload.
struct DataFile {
    name: &'static str,
    sha256: &'static str,
}

const TRAIN_IMAGES: DataFile = DataFile {
    name: "train-images-idx3-ubyte",
    sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
};
const TRAIN_LABELS: DataFile = DataFile {
    name: "train-labels-idx1-ubyte",
    sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
};
const TEST_IMAGES: DataFile = DataFile {
    name: "t10k-images-idx3-ubyte",
    sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
};
const TEST_LABELS: DataFile = DataFile {
    name: "t10k-labels-idx1-ubyte",
    sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
};
const FILES: [&DataFile; 4] = [&TRAIN_IMAGES, &TRAIN_LABELS, &TEST_IMAGES, &TEST_LABELS];

/// Whether to compare the files against the published checksums (off for synthetic test data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    Verify,
    Skip,
}

/// The official training (60,000) and test (10,000) sets.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    pub dir: PathBuf,
    pub train: LabelledImages,
    pub test: LabelledImages,
}

impl FashionMnist {
    /// Finds the data (see [`locate`]), fetching it when it is nowhere, and loads it.
    pub fn find_and_load(explicit: Option<&Path>, checksums: Checksums) -> Result<Self, DataError> {
        let dir = locate_or_fetch(explicit)?;
        Self::load_dir(&dir, checksums)
    }

    /// Loads the four files from `dir` (each `.gz` or uncompressed).
    pub fn load_dir(dir: &Path, checksums: Checksums) -> Result<Self, DataError> {
        let train = load_pair(dir, &TRAIN_IMAGES, &TRAIN_LABELS, checksums)?;
        let test = load_pair(dir, &TEST_IMAGES, &TEST_LABELS, checksums)?;
        Ok(FashionMnist {
            dir: dir.to_path_buf(),
            train,
            test,
        })
    }
}

/// The path of `file` in `dir`: the `.gz` when present, else the uncompressed name.
fn file_path(dir: &Path, file: &DataFile) -> Option<PathBuf> {
    [format!("{}.gz", file.name), file.name.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
}

fn holds_all_files(dir: &Path) -> bool {
    FILES.iter().all(|f| file_path(dir, f).is_some())
}

fn read_verified(
    dir: &Path,
    file: &DataFile,
    checksums: Checksums,
) -> Result<(PathBuf, Vec<u8>), DataError> {
    let path = file_path(dir, file).unwrap_or_else(|| dir.join(format!("{}.gz", file.name)));
    let bytes = idx::read_maybe_gzip(&path)?;
    if checksums == Checksums::Verify {
        idx::verify_sha256(&path, &bytes, file.sha256)?;
    }
    Ok((path, bytes))
}

fn load_pair(
    dir: &Path,
    images_file: &DataFile,
    labels_file: &DataFile,
    checksums: Checksums,
) -> Result<LabelledImages, DataError> {
    let (images_path, image_bytes) = read_verified(dir, images_file, checksums)?;
    let (labels_path, label_bytes) = read_verified(dir, labels_file, checksums)?;
    let images = idx::parse_images(&images_path, &image_bytes)?;
    if (images.rows, images.cols) != (SIDE, SIDE) {
        return Err(DataError::WrongDimensions {
            path: images_path,
            rows: images.rows,
            cols: images.cols,
            expected_rows: SIDE,
            expected_cols: SIDE,
        });
    }
    let labels = idx::parse_labels(&labels_path, &label_bytes, NUM_CLASSES)?;
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images_path,
            labels_path,
            images: images.count,
            labels: labels.len(),
        });
    }
    Ok(LabelledImages {
        pixels: images.pixels,
        labels,
        channels: 1,
        height: SIDE,
        width: SIDE,
    })
}

/// The first folder that holds the four files; else a download into `./data/fashion-mnist`.
/// An explicit `--data DIR` is never replaced by a download.
pub fn locate_or_fetch(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let tried = locate::candidates("fashion-mnist", explicit, &[DEBIAN_DIR]);
    if let Some(dir) = tried.iter().find(|d| holds_all_files(d)) {
        return Ok(dir.clone());
    }
    let hint = "put the four Fashion-MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in ./data/fashion-mnist, or set CONVLAB_DATA, or pass --data DIR".to_string();
    if let Some(dir) = explicit {
        // A folder with some of the files: name the first one missing.
        if FILES.iter().any(|f| file_path(dir, f).is_some())
            && let Some(missing) = FILES.iter().find(|f| file_path(dir, f).is_none())
        {
            return Err(DataError::MissingFile {
                path: dir.join(format!("{}.gz", missing.name)),
                hint: format!(
                    "{} holds some of the Fashion-MNIST files but not this one (compressed or not)",
                    dir.display()
                ),
            });
        }
        return Err(DataError::NotFound {
            name: "fashion-mnist",
            tried,
            hint,
        });
    }
    let target = Path::new("data").join("fashion-mnist");
    download_all(&target, &hint).inspect_err(|_| {
        // Leave no empty folders behind (remove_dir only removes empty ones).
        let _ = std::fs::remove_dir(&target);
        let _ = std::fs::remove_dir("data");
    })?;
    Ok(target)
}

fn download_all(dir: &Path, hint: &str) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    for file in FILES {
        let name = format!("{}.gz", file.name);
        let path = dir.join(&name);
        if path.exists() {
            continue;
        }
        let url = format!("{UPSTREAM}/{name}");
        let bytes = download(&url, hint)?;
        let mut decompressed = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut decompressed)
            .map_err(|e| DataError::Download {
                url: url.clone(),
                reason: format!("not gzip data: {e}"),
                hint: hint.into(),
            })?;
        idx::verify_sha256(Path::new(&url), &decompressed, file.sha256)?;
        crate::fsutil::write_atomic(&path, &bytes).map_err(|e| DataError::io(&path, e))?;
    }
    Ok(())
}

fn download(url: &str, hint: &str) -> Result<Vec<u8>, DataError> {
    let fail = |reason: String| DataError::Download {
        url: url.into(),
        reason,
        hint: hint.into(),
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bar = crate::progress::bytes_bar(total, url);
    let mut reader = response.into_body().into_reader();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut chunk).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        out.write_all(&chunk[..n])
            .map_err(|e| fail(e.to_string()))?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_folder_without_files_is_not_found_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate_or_fetch(Some(dir.path())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not found") && msg.contains(&dir.path().display().to_string()));
        assert!(msg.contains("hint:"));
    }
}
