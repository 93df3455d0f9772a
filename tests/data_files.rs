//! The Fashion-MNIST reader on folders written here: files without their published checksums,
//! images and labels that disagree, images of another size.

mod common;

use common::synthetic;
use convlab::data::DataError;
use convlab::data::fashion_mnist::{Checksums, FashionMnist};
use convlab::data::idx;

#[test]
fn synthetic_folder_loads_without_checksums_and_fails_with_them() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_fashion_dir(dir.path(), 50, 20).unwrap();
    let sets = FashionMnist::load_dir(dir.path(), Checksums::Skip).unwrap();
    assert_eq!((sets.train.len(), sets.test.len()), (50, 20));
    let err = FashionMnist::load_dir(dir.path(), Checksums::Verify).unwrap_err();
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte: SHA-256"),
        "{err}"
    );
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_fashion_dir(dir.path(), 50, 20).unwrap();
    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx::encode_labels(&[1; 19]),
    )
    .unwrap();
    let err = FashionMnist::load_dir(dir.path(), Checksums::Skip).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 20,
                labels: 19,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("t10k-images-idx3-ubyte") && msg.contains("t10k-labels-idx1-ubyte"),
        "{msg}"
    );
}

#[test]
fn wrong_image_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_fashion_dir(dir.path(), 50, 20).unwrap();
    let small = idx::IdxImages {
        count: 20,
        rows: 14,
        cols: 14,
        pixels: vec![0; 20 * 196],
    };
    std::fs::write(
        dir.path().join("t10k-images-idx3-ubyte"),
        idx::encode_images(&small),
    )
    .unwrap();
    let err = FashionMnist::load_dir(dir.path(), Checksums::Skip).unwrap_err();
    assert!(
        matches!(err, DataError::WrongDimensions { rows: 14, .. }),
        "{err}"
    );
}
