//! The label-map decoder on arbitrary bytes: an error, or one index per pixel that fits the
//! PNG's bit depth; never a panic.
#![no_main]

use std::path::Path;

use convlab::data::label_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = label_map::decode_label_map(Path::new("fuzz.png"), data) {
        assert_eq!(map.indices.len(), map.width as usize * map.height as usize);
    }
});
