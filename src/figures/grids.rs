//! Pictures made of small images: learned filters, labelled examples, confusion matrices.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FONT, FigureError, draw_png, text};

/// An image to place in a grid: RGB rows, `width * height * 3` bytes.
#[derive(Clone, Debug)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Picture {
    pub fn from_grey(width: usize, height: usize, grey: &[u8]) -> Self {
        Picture {
            width,
            height,
            rgb: grey.iter().flat_map(|&g| [g, g, g]).collect(),
        }
    }

    /// A grey (1 channel) or RGB (3) image stored channel-major, as the data sets keep them.
    pub fn from_chw(channels: usize, width: usize, height: usize, chw: &[u8]) -> Self {
        if channels == 1 {
            return Picture::from_grey(width, height, chw);
        }
        let plane = width * height;
        Picture {
            width,
            height,
            rgb: (0..plane)
                .flat_map(|i| [chw[i], chw[plane + i], chw[2 * plane + i]])
                .collect(),
        }
    }
}

/// Draws `picture` with its top-left corner at `(x0, y0)`, each pixel `scale` x `scale`.
pub(crate) fn blit(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    picture: &Picture,
    x0: i32,
    y0: i32,
    scale: i32,
) -> Result<(), Box<dyn std::error::Error>> {
    for y in 0..picture.height {
        for x in 0..picture.width {
            let i = 3 * (y * picture.width + x);
            let color = RGBColor(picture.rgb[i], picture.rgb[i + 1], picture.rgb[i + 2]);
            for dy in 0..scale {
                for dx in 0..scale {
                    area.draw_pixel(
                        (x0 + x as i32 * scale + dx, y0 + y as i32 * scale + dy),
                        &color,
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Every first-layer filter (`weights` is `[out, in, k, k]`), scaled up; one grey scale for all,
/// brighter = larger weight. Filters over 3 input channels are shown in colour.
pub fn filters(
    path: &Path,
    weights: &[f32],
    out_channels: usize,
    in_channels: usize,
    kernel: usize,
) -> Result<(), FigureError> {
    let (lo, hi) = weights
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &w| {
            (l.min(w), h.max(w))
        });
    let span = (hi - lo).max(1e-12);
    let to_byte = |w: f32| (255.0 * (w - lo) / span).round().clamp(0.0, 255.0) as u8;
    let colour = in_channels == 3;
    let pictures: Vec<Picture> = (0..out_channels)
        .map(|o| {
            let at = |c: usize, i: usize| weights[((o * in_channels + c) * kernel * kernel) + i];
            let rgb = (0..kernel * kernel)
                .flat_map(|i| {
                    if colour {
                        [to_byte(at(0, i)), to_byte(at(1, i)), to_byte(at(2, i))]
                    } else {
                        let g = to_byte(at(0, i));
                        [g, g, g]
                    }
                })
                .collect();
            Picture {
                width: kernel,
                height: kernel,
                rgb,
            }
        })
        .collect();
    let cols = (out_channels as f64).sqrt().ceil().max(1.0) as usize;
    let rows = out_channels.div_ceil(cols);
    let scale = (48 / kernel.max(1)).max(4) as i32;
    let cell = scale * kernel as i32 + 8;
    let header = 56;
    let width = (cols as i32 * cell + 16).max(420) as u32;
    let height = (rows as i32 * cell + header + 8) as u32;
    draw_png(path, (width, height), |root| {
        root.draw(&Text::new(
            format!(
                "First-layer filters ({out_channels}, {kernel}x{kernel}{})",
                if colour { ", RGB" } else { "" }
            ),
            (8, 8),
            (FONT, 20).into_font(),
        ))?;
        text(
            root,
            format!("brighter = larger weight (scale {lo:.3} .. {hi:.3})"),
            (8, 32),
            14,
        )?;
        for (i, p) in pictures.iter().enumerate() {
            let (r, c) = ((i / cols) as i32, (i % cols) as i32);
            blit(root, p, 8 + c * cell, header + r * cell, scale)?;
        }
        Ok(())
    })
}

/// One labelled cell of a grid row.
pub struct Cell {
    pub picture: Picture,
    pub caption: String,
    pub border: RGBColor,
}

/// One row of a grid: a title on the left and groups of cells, each group with a heading.
pub struct Row {
    pub title: String,
    pub groups: Vec<Vec<Cell>>,
}

/// A grid of rows of pictures with captions, e.g. per-class examples.
pub fn picture_rows(
    path: &Path,
    title: &str,
    group_headings: &[&str],
    rows: &[Row],
    scale: i32,
) -> Result<(), FigureError> {
    let first = rows.iter().flat_map(|r| r.groups.iter().flatten()).next();
    let (pw, ph) = first
        .map(|c| (c.picture.width as i32, c.picture.height as i32))
        .unwrap_or((28, 28));
    let cell_w = (pw * scale + 10).max(84);
    let cell_h = ph * scale + 24;
    let title_w = 130;
    let max_cells: Vec<usize> = (0..group_headings.len())
        .map(|g| {
            rows.iter()
                .map(|r| r.groups.get(g).map_or(0, Vec::len))
                .max()
                .unwrap_or(0)
                .max(1)
        })
        .collect();
    let gap = 24;
    let width = title_w
        + max_cells
            .iter()
            .map(|&n| n as i32 * cell_w + gap)
            .sum::<i32>()
        + 8;
    let header = 64;
    let height = header + rows.len() as i32 * (cell_h + 8) + 8;
    draw_png(path, (width as u32, height as u32), |root| {
        text(root, title.to_string(), (8, 8), 20)?;
        let mut x = title_w;
        for (g, heading) in group_headings.iter().enumerate() {
            text(root, heading.to_string(), (x, 40), 16)?;
            x += max_cells[g] as i32 * cell_w + gap;
        }
        for (r, row) in rows.iter().enumerate() {
            let y = header + r as i32 * (cell_h + 8);
            text(root, row.title.clone(), (8, y + cell_h / 2 - 8), 15)?;
            let mut x = title_w;
            for (g, cells) in row.groups.iter().enumerate() {
                for (i, cell) in cells.iter().enumerate() {
                    let cx = x + i as i32 * cell_w;
                    root.draw(&Rectangle::new(
                        [(cx - 2, y - 2), (cx + pw * scale + 1, y + ph * scale + 1)],
                        cell.border.stroke_width(2),
                    ))?;
                    blit(root, &cell.picture, cx, y, scale)?;
                    text(root, cell.caption.clone(), (cx, y + ph * scale + 4), 11)?;
                }
                if cells.is_empty() {
                    root.draw(&Text::new(
                        "(none)",
                        (x, y + cell_h / 2 - 8),
                        (FONT, 12).into_font().color(&RGBColor(120, 120, 120)),
                    ))?;
                }
                x += max_cells.get(g).copied().unwrap_or(1) as i32 * cell_w + gap;
            }
        }
        Ok(())
    })
}

/// The pictures of `cells` side by side, each framed in its border colour, without captions
/// (a report captions them); an empty strip is a blank cell.
pub fn strip(path: &Path, cells: &[Cell], scale: i32) -> Result<(), FigureError> {
    let (pw, ph) = cells.first().map_or((28, 28), |c| {
        (c.picture.width as i32, c.picture.height as i32)
    });
    let pad = 4;
    let cell_w = pw * scale + 2 * pad;
    let width = cell_w * cells.len().max(1) as i32;
    let height = ph * scale + 2 * pad;
    draw_png(path, (width as u32, height as u32), |root| {
        for (i, cell) in cells.iter().enumerate() {
            let x = i as i32 * cell_w + pad;
            root.draw(&Rectangle::new(
                [(x - 3, pad - 3), (x + pw * scale + 2, pad + ph * scale + 2)],
                cell.border.stroke_width(3),
            ))?;
            blit(root, &cell.picture, x, pad, scale)?;
        }
        Ok(())
    })
}

fn lerp(from: (u8, u8, u8), to: (u8, u8, u8), t: f64) -> RGBColor {
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * t).round() as u8;
    RGBColor(mix(from.0, to.0), mix(from.1, to.1), mix(from.2, to.2))
}

/// A confusion matrix: counts in each cell, shaded by the share of the true class (row).
pub fn confusion(
    path: &Path,
    title: &str,
    names: &[String],
    counts: &[Vec<u64>],
) -> Result<(), FigureError> {
    let n = names.len() as i32;
    let cell = 56;
    let left = 150;
    let top = 90;
    let width = left + n * cell + 20;
    let height = top + n * cell + 130;
    draw_png(path, (width as u32, height as u32), |root| {
        text(root, title.to_string(), (8, 8), 20)?;
        text(
            root,
            "rows: true class, columns: predicted; shade = share of the row",
            (8, 36),
            13,
        )?;
        for (i, row) in counts.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            let y = top + i as i32 * cell;
            root.draw(&Text::new(
                names[i].clone(),
                (left - 8, y + cell / 2),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
            for (j, &v) in row.iter().enumerate() {
                let share = v as f64 / total as f64;
                let x = left + j as i32 * cell;
                // Green for the diagonal, red for errors (errors scaled up to stay visible).
                let intensity = if i == j {
                    share
                } else {
                    (3.0 * share).min(1.0)
                };
                let fill = if i == j {
                    lerp((255, 255, 255), (0, 109, 44), intensity)
                } else {
                    lerp((255, 255, 255), (203, 24, 29), intensity)
                };
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200),
                ))?;
                let text_color = if intensity > 0.6 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    v.to_string(),
                    (x + cell / 2, y + cell / 2),
                    TextStyle::from((FONT, 13).into_font())
                        .color(&text_color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }
        for (j, name) in names.iter().enumerate() {
            let x = left + j as i32 * cell + cell / 2;
            root.draw(&Text::new(
                name.clone(),
                (x, top + n * cell + 8),
                TextStyle::from((FONT, 13).into_font().transform(FontTransform::Rotate90))
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    })
}
