//! Prediction on any photo with a trained segmenter: rescaled to 256x256, written as a class-index
//! mask, a colour-coded picture, an overlay with legend, and optionally the probabilities (.npy).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::data::DataError;
use crate::data::facade::{self, NUM_CLASSES, SIDE};
use crate::data::label_map::encode_label_map;
use crate::engine::Compute;
use crate::figures::{FigureError, segmentation};
use crate::fsutil::write_atomic;
use crate::run::config::SegmentationConfig;
use crate::run::json::read_json;
use crate::run::{RunDir, RunError, checkpoint};
use crate::tasks::TaskError;
use crate::tasks::segmentation::{argmax_classes, probabilities};

/// One photo's prediction: the files written and each class's share of the pixels.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub photo: PathBuf,
    pub files: PredictionFiles,
    /// `(class name, share of the pixels)` in class order.
    pub shares: Vec<(&'static str, f64)>,
}

/// The files written for one photo.
#[derive(Clone, Debug)]
pub struct PredictionFiles {
    pub mask: PathBuf,
    pub color: PathBuf,
    pub overlay: PathBuf,
    pub probs: Option<PathBuf>,
}

/// `convlab facade predict --run DIR PHOTO... --out DIR [--save-probs]`.
pub fn predict_command(
    run_dir: &Path,
    photos: &[PathBuf],
    out: &Path,
    save_probs: bool,
    compute: &Compute,
) -> Result<Vec<Prediction>, TaskError> {
    let run = RunDir::existing(run_dir)?;
    let config: SegmentationConfig = read_json(&run.config())?;
    // Every photo is decoded before any work, so a bad one stops the command early.
    let decoded: Vec<(PathBuf, image::RgbImage)> = photos
        .iter()
        .map(|p| Ok((p.clone(), facade::read_photo(p)?)))
        .collect::<Result<_, DataError>>()?;
    let (model, _, _) =
        checkpoint::load_final(&run, config.model.name(), &config.architecture, compute)?;
    std::fs::create_dir_all(out).map_err(|e| RunError::not_writable(out, e))?;
    let mut written = Vec::new();
    for (path, photo) in decoded {
        let resized =
            image::imageops::resize(&photo, SIDE as u32, SIDE as u32, FilterType::Triangle);
        let chw = facade::hwc_to_chw(&resized);
        let mut values = Vec::with_capacity(chw.len());
        config.normalization.extend(&mut values, &chw, SIDE * SIDE);
        let probs = probabilities(&model, values, 1);
        let labels = argmax_classes(&probs);
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let files = write_outputs(
            out,
            &stem,
            resized.as_raw(),
            &labels,
            save_probs.then_some(&probs[..]),
        )?;
        written.push(Prediction {
            photo: path,
            files,
            shares: class_shares(&labels),
        });
    }
    Ok(written)
}

fn class_shares(labels: &[u8]) -> Vec<(&'static str, f64)> {
    facade::CLASS_NAMES
        .iter()
        .enumerate()
        .map(|(c, &name)| {
            let share =
                labels.iter().filter(|&&l| l as usize == c).count() as f64 / labels.len() as f64;
            (name, share)
        })
        .collect()
}

fn write_outputs(
    out: &Path,
    stem: &str,
    photo_rgb: &[u8],
    labels: &[u8],
    probs: Option<&[f32]>,
) -> Result<PredictionFiles, TaskError> {
    let files = PredictionFiles {
        mask: out.join(format!("{stem}_mask.png")),
        color: out.join(format!("{stem}_color.png")),
        overlay: out.join(format!("{stem}_overlay.png")),
        probs: probs.map(|_| out.join(format!("{stem}_probs.npy"))),
    };
    let io = |path: &Path, e: std::io::Error| RunError::io(path, e);
    write_atomic(
        &files.mask,
        &encode_label_map(SIDE as u32, SIDE as u32, labels),
    )
    .map_err(|e| io(&files.mask, e))?;
    let color = image::RgbImage::from_raw(SIDE as u32, SIDE as u32, segmentation::colorize(labels))
        .expect("sized buffer");
    let mut png = Vec::new();
    color
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| FigureError::new(&files.color, e))?;
    write_atomic(&files.color, &png).map_err(|e| io(&files.color, e))?;
    segmentation::overlay(&files.overlay, photo_rgb, labels, SIDE)?;
    if let (Some(probs), Some(path)) = (probs, &files.probs) {
        write_atomic(path, &npy_f32(probs, &[NUM_CLASSES, SIDE, SIDE])).map_err(|e| io(path, e))?;
    }
    Ok(files)
}

/// NumPy's `.npy` format, version 1.0, little-endian float32, C order.
pub fn npy_f32(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let shape_text = if shape.len() == 1 {
        format!("({dims},)")
    } else {
        format!("({dims})")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let bytes = npy_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[1, 2, 3]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }")
        );
        assert!(header.ends_with('\n'));
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 4],
            &1.0f32.to_le_bytes()
        );
        assert_eq!(bytes.len(), 10 + header_len + 24);
    }
}
