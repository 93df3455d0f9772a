//! A run's images in the report: figures copied from the run folder into a folder beside the
//! page (`<out>/<n>-<run>/`), referenced relative to it, or a note saying how to draw them.

use std::path::{Path, PathBuf};

use super::ReportError;
use super::common::eval_command;
use super::html;
use super::runs::LoadedRun;

use crate::fsutil::write_atomic;

/// Where one run's images go: `<page_dir>/<folder>/`, referenced relative to the page.
pub(super) struct Assets {
    pub(super) page_dir: PathBuf,
    pub(super) folder: String,
}

impl Assets {
    pub(super) fn dir(&self) -> PathBuf {
        self.page_dir.join(&self.folder)
    }

    /// Copies `from` as `name` beside the page; `None` when the run has no such file.
    pub(super) fn copy(&self, from: &Path, name: &str) -> Result<Option<String>, ReportError> {
        if !from.is_file() {
            return Ok(None);
        }
        let to = self.dir().join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ReportError::io(parent, e))?;
        }
        let bytes = std::fs::read(from).map_err(|e| ReportError::io(from, e))?;
        write_atomic(&to, &bytes).map_err(|e| ReportError::io(&to, e))?;
        Ok(Some(format!("{}/{name}", self.folder)))
    }

    /// The run's `figures/<file>` as a figure, or a note saying how to draw it.
    pub(super) fn figure(
        &self,
        run: &LoadedRun,
        file: &str,
        alt: &str,
        caption: &str,
    ) -> Result<String, ReportError> {
        Ok(match self.copy(&run.dir.figures().join(file), file)? {
            Some(src) => html::figure(&src, alt, caption),
            None => html::missing(
                &format!("figures/{file}"),
                &format!(
                    "evaluate the run again (`{}`) to draw it",
                    eval_command(run)
                ),
            ),
        })
    }
}
