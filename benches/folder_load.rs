//! How long loading the user's own folders takes: Fashion-MNIST written out as 70,000 PNGs in
//! class folders (`convlab classify`'s layout) and Mini Facade as photos with masks and a
//! classes.json (`convlab segment`'s), each beside the preset reader of the same data.
//!
//! `cargo bench --bench folder_load [-- --keep DIR]` reads the real sets from `$CONVLAB_DATA`
//! (else `../shared/data`, else `./data`), writes the folders (into DIR when given, kept for a
//! worked example; else a temporary folder), loads each three times and prints a table of the
//! medians. Warm page cache: the files were just written or read.

use std::path::{Path, PathBuf};
use std::time::Instant;

use convlab::data::facade::{self, MiniFacade};
use convlab::data::fashion_mnist::{CLASS_NAMES, Checksums, FashionMnist};
use convlab::data::image_folder::{self, FolderOptions};
use convlab::data::{LabelledImages, mask_folder};
use rayon::prelude::*;

fn data_root() -> PathBuf {
    std::env::var_os("CONVLAB_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("../shared/data"), PathBuf::from("data")])
        .find(|d| d.join("fashion-mnist").is_dir() && d.join("mini_facade").is_dir())
        .unwrap_or_else(|| {
            eprintln!(
                "folder_load: no data root holds fashion-mnist/ and mini_facade/ (set CONVLAB_DATA)"
            );
            std::process::exit(2);
        })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The median of three timed calls of `f`, in seconds.
fn median_of_three(mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[1]
}

/// `dir/<class>/NNNNN.png` for every image of `set`.
fn write_class_folders(dir: &Path, set: &LabelledImages) {
    for (c, name) in CLASS_NAMES.iter().enumerate() {
        std::fs::create_dir_all(dir.join(class_folder(c, name))).unwrap();
    }
    (0..set.len()).into_par_iter().for_each(|i| {
        let c = set.labels[i] as usize;
        image::GrayImage::from_raw(28, 28, set.image(i).to_vec())
            .unwrap()
            .save(
                dir.join(class_folder(c, CLASS_NAMES[c]))
                    .join(format!("{i:05}.png")),
            )
            .unwrap();
    });
}

/// Folder names that sort in class order and hold no '/'.
fn class_folder(c: usize, name: &str) -> String {
    format!("{c}_{}", name.replace('/', "-"))
}

/// Mini Facade's `split` as `out/images/*.jpg` and `out/masks/*.png` (the label maps are
/// palette index maps already).
fn copy_facade_split(from: &Path, out: &Path) {
    std::fs::create_dir_all(out.join("images")).unwrap();
    std::fs::create_dir_all(out.join("masks")).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("jpg") => std::fs::copy(&path, out.join("images").join(name)).unwrap(),
            Some("png") => std::fs::copy(&path, out.join("masks").join(name)).unwrap(),
            _ => continue,
        };
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let temp = tempfile::tempdir_in(".").unwrap();
    let out = keep.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let root = data_root();
    let fashion_dir = root.join("fashion-mnist");
    let facade_dir = root.join("mini_facade");

    let fashion = FashionMnist::load_dir(&fashion_dir, Checksums::Verify).unwrap();
    let png_dir = out.join("fashion-png");
    let start = Instant::now();
    write_class_folders(&png_dir.join("train"), &fashion.train);
    write_class_folders(&png_dir.join("test"), &fashion.test);
    let written = start.elapsed().as_secs_f64();

    let folder_dir = out.join("facade-folder");
    let classes: Vec<serde_json::Value> = facade::classes()
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "color": c.hex()}))
        .collect();
    std::fs::create_dir_all(&folder_dir).unwrap();
    std::fs::write(
        folder_dir.join("classes.json"),
        serde_json::to_string_pretty(&classes).unwrap(),
    )
    .unwrap();
    copy_facade_split(&facade_dir.join("train"), &folder_dir.join("train"));
    copy_facade_split(&facade_dir.join("test_dev"), &folder_dir.join("test"));

    let rows = [
        (
            "Fashion-MNIST, 4 IDX files (preset)",
            "70,000 28x28",
            median_of_three(|| {
                FashionMnist::load_dir(&fashion_dir, Checksums::Verify).unwrap();
            }),
        ),
        (
            "Fashion-MNIST as PNG class folders (classify)",
            "70,000 28x28",
            median_of_three(|| {
                let folder = image_folder::load(&png_dir, FolderOptions::default()).unwrap();
                assert_eq!(
                    (folder.train.len(), folder.test.map(|t| t.len())),
                    (60_000, Some(10_000))
                );
            }),
        ),
        (
            "Mini Facade, JPEG + label maps (preset)",
            "1,020 256x256",
            median_of_three(|| {
                MiniFacade::load_dir(&facade_dir).unwrap();
            }),
        ),
        (
            "Mini Facade as photos + masks + classes.json (segment)",
            "1,020 256x256",
            median_of_three(|| {
                mask_folder::load(&folder_dir, 256).unwrap();
            }),
        ),
    ];
    println!(
        "\nLoading data sets into memory ({}, {} threads; median of 3, warm page cache)\n",
        cpu_model(),
        rayon::current_num_threads()
    );
    println!("| data | images | seconds |");
    println!("|---|---|---|");
    for (what, images, seconds) in rows {
        println!("| {what} | {images} | {seconds:.2} |");
    }
    println!("\n(writing the 70,000 PNGs took {written:.1} s)");
    if let Some(dir) = keep {
        println!(
            "kept: {} and {}",
            dir.join("fashion-png").display(),
            dir.join("facade-folder").display()
        );
    }
}
