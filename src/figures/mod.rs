//! Figures as PNG files: line and bar charts, image grids (filters, examples) and confusion
//! matrices. Text uses an embedded font (DejaVu Sans) so figures look the same everywhere.

pub mod charts;
pub mod classification;
pub mod curves;
pub mod grids;
pub mod segmentation;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::style::FontStyle;

#[derive(Debug, thiserror::Error)]
#[error("{}: cannot draw figure: {reason}", path.display())]
pub struct FigureError {
    pub path: PathBuf,
    pub reason: String,
}

impl FigureError {
    pub fn new(path: &Path, reason: impl std::fmt::Display) -> Self {
        FigureError {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

pub(crate) fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            .unwrap_or_else(|_| panic!("embedded font is valid"));
    });
}

/// Draws `text` with its top left at `at`, in the figures' font at `size` pixels.
pub(crate) fn text(
    area: &plotters::prelude::DrawingArea<plotters::prelude::BitMapBackend, plotters::coord::Shift>,
    text: impl Into<String>,
    at: (i32, i32),
    size: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    area.draw(&Text::new(text.into(), at, (FONT, size).into_font()))?;
    Ok(())
}

/// Draws into a temporary PNG with `draw`, then renames it over `path` (atomic output).
pub(crate) fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &plotters::prelude::DrawingArea<plotters::prelude::BitMapBackend, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), FigureError> {
    use plotters::prelude::*;
    init_font();
    let tmp = path.with_extension("tmp.png");
    let result = (|| {
        {
            let root = BitMapBackend::new(&tmp, size).into_drawing_area();
            root.fill(&WHITE)?;
            draw(&root)?;
            root.present()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FigureError::new(path, e)
    })
}
