//! The IDX reader (gzip or raw, images and labels) on arbitrary bytes: it returns an error or
//! data consistent with its header, and never panics or allocates without bound.
#![no_main]

use std::path::Path;

use convlab::data::idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-idx");
    let Ok(bytes) = idx::decompress_if_gzip(path, data.to_vec()) else {
        return;
    };
    if let Ok(images) = idx::parse_images(path, &bytes) {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
    }
    if let Ok(labels) = idx::parse_labels(path, &bytes, 10) {
        assert!(labels.iter().all(|&l| l < 10));
    }
});
