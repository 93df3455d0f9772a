//! A data set as a task sees it, whichever reader made it: a preset (Fashion-MNIST, Mini
//! Facade) or the user's folder. The splits that the data set does not have are split off its
//! training part later, seeded (see [`super::split`]).

use std::path::PathBuf;

use super::facade::{self, MiniFacade};
use super::fashion_mnist::{self, FashionMnist};
use super::image_folder::{FolderLayout, ImageFolder};
use super::mask_folder::MaskFolder;
use super::{ClassSpec, LabelledImages, SegmentedImages};

/// Where a data set came from, for the header `train` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct DataOrigin {
    pub dir: PathBuf,
    /// What was read there, e.g. "Fashion-MNIST IDX files, SHA-256 verified".
    pub description: String,
}

/// A data set whatever the task: its classes, its training part and the validation and test
/// splits it has of its own. `S` is the task's samples (images with a label each, or photos
/// with a class per pixel), `C` how it names a class.
#[derive(Clone, Debug)]
pub struct Sets<S, C> {
    pub origin: DataOrigin,
    /// The classes in index order.
    pub classes: Vec<C>,
    pub train: S,
    pub val: Option<S>,
    pub test: Option<S>,
}

/// Images with one label each, and the splits the data set has of its own.
pub type ClassificationSets = Sets<LabelledImages, String>;

/// Photos with a class per pixel, and the splits the data set has of its own.
pub type SegmentationSets = Sets<SegmentedImages, ClassSpec>;

impl ClassificationSets {
    pub fn fashion_mnist(sets: FashionMnist, verified: bool) -> Self {
        let check = if verified {
            "SHA-256 verified"
        } else {
            "checksums not verified"
        };
        ClassificationSets {
            origin: DataOrigin {
                dir: sets.dir,
                description: format!("Fashion-MNIST IDX files, {check}"),
            },
            classes: fashion_mnist::CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            train: sets.train,
            val: None,
            test: Some(sets.test),
        }
    }
}

impl From<ImageFolder> for ClassificationSets {
    fn from(folder: ImageFolder) -> Self {
        let description = match folder.layout {
            FolderLayout::ClassFolders => "class folders (DIR/<class>/*)",
            FolderLayout::Splits => "class folders per split (DIR/train|val|test/<class>/*)",
        };
        ClassificationSets {
            origin: DataOrigin {
                dir: folder.root,
                description: description.into(),
            },
            classes: folder.class_names,
            train: folder.train,
            val: folder.val,
            test: folder.test,
        }
    }
}

impl SegmentationSets {
    pub fn mini_facade(sets: MiniFacade) -> Self {
        SegmentationSets {
            origin: DataOrigin {
                dir: sets.dir,
                description: "Mini Facade photos and label maps (train/, test_dev/)".into(),
            },
            classes: facade::classes(),
            train: sets.train,
            val: None,
            test: Some(sets.test),
        }
    }
}

impl From<MaskFolder> for SegmentationSets {
    fn from(folder: MaskFolder) -> Self {
        SegmentationSets {
            origin: DataOrigin {
                dir: folder.root,
                description: "photos and masks (classes.json, DIR/train|val|test/{images,masks})"
                    .into(),
            },
            classes: folder.classes,
            train: folder.train,
            val: folder.val,
            test: folder.test,
        }
    }
}
