//! What long work tells its user while it runs, without printing it: the layers below the CLI
//! send notices (one line each: a resume on another engine, the epochs a budget fits) and
//! progress (bars counting steps, photos or bytes) to the process's [`Reporter`]. Only the
//! command line installs one (it draws bars and writes lines on stderr); without one, as in
//! tests or a program using the library, reports go nowhere. The split is the `log` crate's:
//! a library speaks through a facade and the program decides where it goes.

use std::sync::OnceLock;

/// What a bar counts, which says how it is drawn and labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counting {
    /// The steps of training epoch `epoch` of `epochs`.
    Steps { epoch: usize, epochs: usize },
    /// Items (photos, files, evaluated sets) of the work named.
    Items(String),
    /// Bytes of the download named.
    Bytes(String),
}

/// Where a process's reports go.
pub trait Reporter: Send + Sync {
    /// One line for the user: a notice about the work, not an error.
    fn notice(&self, line: &str);
    /// A new bar counting from 0 to `total`.
    fn bar(&self, counting: Counting, total: u64) -> Box<dyn BarSink>;
}

/// The reporter's end of one bar.
pub trait BarSink: Send + Sync {
    fn advance(&self, by: u64);
    fn set_message(&self, message: String);
    /// The bar's end: cleared when the work completed, left as it stood when it was cut short.
    fn end(&self, completed: bool);
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Sends this process's reports to `reporter`; false, and `reporter` unused, when one was
/// installed already (the first stays: bars already drawn keep their reporter).
pub fn install(reporter: Box<dyn Reporter>) -> bool {
    REPORTER.set(reporter).is_ok()
}

/// Tells the user `line`, where a reporter listens.
pub fn notice(line: &str) {
    if let Some(reporter) = REPORTER.get() {
        reporter.notice(line);
    }
}

/// A progress bar: drawn by the reporter, or nothing where none listens or it is hidden.
pub struct Bar(Option<Box<dyn BarSink>>);

impl Bar {
    pub fn new(counting: Counting, total: u64) -> Self {
        Bar(REPORTER.get().map(|r| r.bar(counting, total)))
    }

    /// A bar that draws nothing (a rank other than 0 of a data-parallel run stays quiet).
    pub fn hidden() -> Self {
        Bar(None)
    }

    pub fn inc(&self, by: u64) {
        if let Some(sink) = &self.0 {
            sink.advance(by);
        }
    }

    /// Sets the bar's message; `message` runs only where the bar is drawn.
    pub fn set_message(&self, message: impl FnOnce() -> String) {
        if let Some(sink) = &self.0 {
            sink.set_message(message());
        }
    }

    /// The work is done: the bar goes.
    pub fn finish_and_clear(&self) {
        if let Some(sink) = &self.0 {
            sink.end(true);
        }
    }

    /// The work was cut short: the bar stays as it stood.
    pub fn abandon(&self) {
        if let Some(sink) = &self.0 {
            sink.end(false);
        }
    }
}

pub fn epoch_bar(steps: usize, epoch: usize, epochs: usize) -> Bar {
    Bar::new(Counting::Steps { epoch, epochs }, steps as u64)
}

pub fn count_bar(total: usize, what: &str) -> Bar {
    Bar::new(Counting::Items(what.to_string()), total as u64)
}

pub fn bytes_bar(total: u64, what: &str) -> Bar {
    Bar::new(Counting::Bytes(what.to_string()), total)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything reported, in order, as lines.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    struct RecordedBar(Recorder, String);

    impl Recorder {
        fn push(&self, line: String) {
            self.0.lock().expect("not poisoned").push(line);
        }
    }

    impl Reporter for Recorder {
        fn notice(&self, line: &str) {
            self.push(format!("notice {line}"));
        }
        fn bar(&self, counting: Counting, total: u64) -> Box<dyn BarSink> {
            let name = format!("{counting:?}");
            self.push(format!("bar {name} to {total}"));
            Box::new(RecordedBar(self.clone(), name))
        }
    }

    impl BarSink for RecordedBar {
        fn advance(&self, by: u64) {
            self.0.push(format!("{} +{by}", self.1));
        }
        fn set_message(&self, message: String) {
            self.0.push(format!("{} says {message}", self.1));
        }
        fn end(&self, completed: bool) {
            self.0
                .push(format!("{} ends, completed {completed}", self.1));
        }
    }

    #[test]
    fn reports_reach_the_installed_reporter_and_hidden_bars_stay_silent() {
        let recorder = Recorder::default();
        assert!(
            install(Box::new(recorder.clone())),
            "the test binary's only reporter"
        );
        assert!(
            !install(Box::new(Recorder::default())),
            "the first reporter stays"
        );
        // Other tests of this binary report too: look at this test's own lines only.
        let label = "reporter test photos";
        notice("reporter test: a notice");
        let bar = count_bar(3, label);
        bar.inc(2);
        bar.set_message(|| "two of three".into());
        bar.abandon();
        let hidden = Bar::hidden();
        hidden.inc(1);
        hidden.set_message(|| panic!("a hidden bar formats no message"));
        hidden.finish_and_clear();
        let name = format!("{:?}", Counting::Items(label.into()));
        let lines: Vec<String> = recorder.0.lock().expect("not poisoned").clone();
        let ours: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("reporter test"))
            .collect();
        assert_eq!(
            ours,
            [
                "notice reporter test: a notice".to_string(),
                format!("bar {name} to 3"),
                format!("{name} +2"),
                format!("{name} says two of three"),
                format!("{name} ends, completed false"),
            ]
            .iter()
            .collect::<Vec<_>>()
        );
    }
}
