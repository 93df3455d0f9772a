//! The terminal's end of [`crate::progress`]: notices as lines on stderr, bars drawn by
//! indicatif (which draws nothing when stderr is not a terminal, so logs stay clean).

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::{BarSink, Counting, Reporter};

/// Reports drawn on the terminal that runs `convlab`.
pub struct Terminal;

impl Reporter for Terminal {
    fn notice(&self, line: &str) {
        eprintln!("{line}");
    }

    fn bar(&self, counting: Counting, total: u64) -> Box<dyn BarSink> {
        let bar = ProgressBar::new(total);
        let (template, label) = match counting {
            Counting::Steps { epoch, epochs } => (
                "epoch {prefix} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
                format!("{epoch}/{epochs}"),
            ),
            Counting::Items(what) => ("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise}", what),
            Counting::Bytes(what) => (
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                what,
            ),
        };
        let style = ProgressStyle::with_template(template).expect("valid template");
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(label);
        Box::new(TerminalBar(bar))
    }
}

struct TerminalBar(ProgressBar);

impl BarSink for TerminalBar {
    fn advance(&self, by: u64) {
        self.0.inc(by);
    }

    fn set_message(&self, message: String) {
        self.0.set_message(message);
    }

    fn end(&self, completed: bool) {
        match completed {
            true => self.0.finish_and_clear(),
            false => self.0.abandon(),
        }
    }
}
