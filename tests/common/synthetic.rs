//! Small synthetic data sets in the real formats, for the tests: learnable, seeded, and written
//! to disk exactly as the real files are laid out. Test scaffolding, so it lives beside the tests
//! rather than in the library.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use convlab::data::fashion_mnist::{NUM_CLASSES, SIDE};
use convlab::data::idx::{self, IdxImages};

/// `count` 28x28 grey images: class `c` is a bright 6x6 block at its own place, on noise.
pub fn blocks(count: usize, seed: u64) -> (IdxImages, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = Vec::with_capacity(count * SIDE * SIDE);
    let mut labels = Vec::with_capacity(count);
    for i in 0..count {
        let class = (i % NUM_CLASSES) as u8;
        let (by, bx) = (3 + 12 * (class as usize / 5), 1 + 5 * (class as usize % 5));
        for y in 0..SIDE {
            for x in 0..SIDE {
                let inside = (by..by + 6).contains(&y) && (bx..bx + 6).contains(&x);
                let noise: u8 = rng.random_range(0..60);
                pixels.push(if inside { 255 - noise } else { noise });
            }
        }
        labels.push(class);
    }
    let images = IdxImages {
        count,
        rows: SIDE,
        cols: SIDE,
        pixels,
    };
    (images, labels)
}

/// Writes a Fashion-MNIST-shaped folder (four uncompressed IDX files) of block images.
pub fn write_fashion_dir(dir: &Path, train: usize, test: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (prefix, count, seed) in [("train", train, 1), ("t10k", test, 2)] {
        let (images, labels) = blocks(count, seed);
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            idx::encode_images(&images),
        )?;
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            idx::encode_labels(&labels),
        )?;
    }
    Ok(())
}

/// Writes a Mini-Facade-shaped split folder of `count` 256x256 photo/label pairs: horizontal
/// bands of the five classes at a per-image offset, each band painted in its class colour plus
/// noise, so a segmenter can learn the colour-to-class rule.
pub fn write_facade_split(dir: &Path, count: usize, seed: u64) -> std::io::Result<()> {
    use convlab::data::facade::encode_label_map;
    use convlab::data::facade::{COLORS, NUM_CLASSES, SIDE};
    std::fs::create_dir_all(dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..count {
        let offset = rng.random_range(0..SIDE);
        let label: Vec<u8> = (0..SIDE * SIDE)
            .map(|p| ((((p / SIDE) + offset) / 24) % NUM_CLASSES) as u8)
            .collect();
        let photo = image::RgbImage::from_fn(SIDE as u32, SIDE as u32, |x, y| {
            let c = COLORS[label[y as usize * SIDE + x as usize] as usize];
            let mut px = [0u8; 3];
            for k in 0..3 {
                px[k] = (c[k] as i32 / 2 + 60 + rng.random_range(-30..30)).clamp(0, 255) as u8;
            }
            image::Rgb(px)
        });
        photo
            .save(dir.join(format!("eecs442_{i:04}.jpg")))
            .map_err(std::io::Error::other)?;
        std::fs::write(
            dir.join(format!("eecs442_{i:04}.png")),
            encode_label_map(SIDE as u32, SIDE as u32, &label),
        )?;
    }
    Ok(())
}
