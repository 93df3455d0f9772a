//! README.md's commands work as written: every command line in its fenced code blocks that
//! invokes convlab parses with the command line's own parser, the synopsis names only
//! subcommands and flags that exist, and the quick commands run end to end in order.
//!
//! - A *command* is a line of a fenced code block (after joining lines that end in `\` and
//!   dropping a trailing `# comment`) that starts with `convlab `, `target/release/convlab `,
//!   `cargo run --release -- ` or `cargo run --release --features wgpu -- `. It must parse with `Cli::try_parse_from`; a
//!   failure names the README line. Commands are plain words (no quotes, `$`, pipes or
//!   redirections), so splitting on white space is how a shell splits them.
//! - The *synopsis* is the fenced block right after a line starting `<!-- synopsis`: it holds
//!   placeholders (`N`, `DIR`, `[--model base|wide]`), so its lines are checked differently:
//!   each `convlab` line's subcommand path (alternatives `a|b` expanded) must exist, every
//!   `--flag` on it (outside parenthesised prose) must be a flag of that subcommand, and every
//!   subcommand of the CLI must appear in it.
//! - A command is *quick*, and runs end to end, when it is `fashion` or `classify` `train`,
//!   `eval`, `predict` or `search`, `report`, `export`, or `bench --measure peak`, and does not
//!   ask for `--device gpu`, `--slurm` (which submits jobs) or `--distributed` (which `mpirun`
//!   launches): these finish in seconds on a small synthetic set once training is
//!   cut short. Segmentation commands (256x256 photos) and everything else are parsed only.
//!   Quick commands run in README order, in one temporary folder, with these substitutions:
//!   `$CONVLAB_DATA` holds a synthetic Fashion-MNIST (and `fashion` commands that read data get
//!   `--skip-checksums`, as its files are not the official ones); a `classify` `--data` folder
//!   is a synthetic class-folder set; `train` gets `--epochs 1 --limit 64` and `search`
//!   `--trials 2 --epochs 1 --limit 64`; an image file a command names is written as a small
//!   synthetic picture. Everything else (models, run folders, formats) is the README's. The
//!   test fails unless train, eval, predict, report, both exports and the peak all ran.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{CommandFactory, Parser};
use convlab::cli::Cli;

const PREFIXES: &[&str] = &[
    "convlab ",
    "target/release/convlab ",
    "cargo run --release -- ",
    "cargo run --release --features wgpu -- ",
];

/// Launchers whose command line ends in one of convlab's.
const LAUNCHERS: &[&str] = &["mpirun ", "srun "];

/// One line of a fenced code block, with its 1-based line number in README.md.
struct Line {
    number: usize,
    text: String,
}

/// A fenced code block of README.md.
struct Block {
    synopsis: bool,
    lines: Vec<Line>,
}

/// A convlab command from README.md: its first line's number and its arguments, `convlab`
/// first.
struct ReadmeCommand {
    line: usize,
    args: Vec<String>,
}

impl ReadmeCommand {
    fn shown(&self) -> String {
        format!("README.md:{}: `{}`", self.line, self.args.join(" "))
    }
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            match open.take() {
                Some(block) => blocks.push(block),
                None => {
                    open = Some(Block {
                        synopsis: previous.trim_start().starts_with("<!-- synopsis"),
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(block) = open.as_mut() {
            block.lines.push(Line {
                number: index + 1,
                text: line.to_string(),
            });
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    assert!(open.is_none(), "README.md: a code block is never closed");
    blocks
}

/// The commands of every block but the synopsis.
fn commands(text: &str) -> Vec<ReadmeCommand> {
    let mut found = Vec::new();
    for block in blocks(text).iter().filter(|b| !b.synopsis) {
        let mut lines = block.lines.iter();
        while let Some(first) = lines.next() {
            let mut joined = first.text.trim().to_string();
            while let Some(head) = joined.strip_suffix('\\') {
                joined = head.to_string();
                match lines.next() {
                    Some(next) => joined.push_str(next.text.trim()),
                    None => break,
                }
            }
            let without_comment = joined.split(" #").next().unwrap_or_default().trim();
            // A command under a launcher (`mpirun -np 2 ... target/release/convlab ...`) is
            // convlab's from its binary on.
            let without_comment = match LAUNCHERS.iter().any(|l| without_comment.starts_with(l)) {
                true => without_comment
                    .find(" target/release/convlab ")
                    .map_or(without_comment, |at| &without_comment[at + 1..]),
                false => without_comment,
            };
            let Some(rest) = PREFIXES
                .iter()
                .find_map(|prefix| without_comment.strip_prefix(prefix))
            else {
                continue;
            };
            assert!(
                !rest.contains(['\'', '"', '$', '|', '>', '<', ';', '&', '`']),
                "README.md:{}: `{without_comment}`: a README command is plain words",
                first.number
            );
            let mut args = vec!["convlab".to_string()];
            args.extend(rest.split_whitespace().map(str::to_string));
            found.push(ReadmeCommand {
                line: first.number,
                args,
            });
        }
    }
    found
}

#[test]
fn every_readme_command_parses() {
    let commands = commands(&readme());
    assert!(
        !commands.is_empty(),
        "no convlab command found in README.md"
    );
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|command| {
            Cli::try_parse_from(&command.args)
                .err()
                .map(|e| format!("{}: {}", command.shown(), e.render()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "README commands the CLI refuses:\n{}",
        failures.join("\n")
    );
}

/// The synopsis's entries: each `convlab` line with the indented lines that continue it.
fn synopsis_entries(text: &str) -> Vec<(usize, String)> {
    let blocks = blocks(text);
    let synopsis: Vec<&Block> = blocks.iter().filter(|b| b.synopsis).collect();
    assert_eq!(synopsis.len(), 1, "README.md needs one synopsis block");
    let mut entries: Vec<(usize, String)> = Vec::new();
    for line in &synopsis[0].lines {
        if line.text.starts_with("convlab ") {
            entries.push((line.number, line.text.clone()));
        } else if line.text.starts_with(char::is_whitespace) && !line.text.trim().is_empty() {
            let last = entries
                .last_mut()
                .unwrap_or_else(|| panic!("README.md:{}: continues no entry", line.number));
            last.1.push(' ');
            last.1.push_str(line.text.trim());
        }
    }
    entries
}

/// An entry's subcommand paths (`classify eval|search` gives two) and its flags, leaving out
/// prose in parentheses.
fn paths_and_flags(entry: &str) -> (Vec<Vec<String>>, Vec<String>) {
    let words: Vec<&str> = entry
        .split_whitespace()
        .skip(1)
        .take_while(|word| !word.starts_with('('))
        .collect();
    let mut paths = vec![Vec::new()];
    for word in words.iter().take_while(|word| {
        word.chars()
            .all(|c| c.is_ascii_lowercase() || c == '|' || c == '-')
            && !word.starts_with('-')
    }) {
        paths = paths
            .iter()
            .flat_map(|path: &Vec<String>| {
                word.split('|').map(move |alternative| {
                    let mut longer = path.clone();
                    longer.push(alternative.to_string());
                    longer
                })
            })
            .collect();
    }
    let flags = words
        .iter()
        .filter_map(|word| {
            let start = word.find("--")?;
            let flag: String = word[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(flag)
        })
        .collect();
    (paths, flags)
}

fn subcommand<'a>(root: &'a clap::Command, path: &[String]) -> Option<&'a clap::Command> {
    path.iter()
        .try_fold(root, |command, name| command.find_subcommand(name))
}

fn leaf_paths(command: &clap::Command, prefix: Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    let mut children = command.get_subcommands().peekable();
    if children.peek().is_none() {
        out.insert(prefix);
        return;
    }
    // clap's own `help` subcommand is not part of convlab's surface.
    for child in children.filter(|c| c.get_name() != "help") {
        let mut path = prefix.clone();
        path.push(child.get_name().to_string());
        leaf_paths(child, path, out);
    }
}

#[test]
fn the_synopsis_names_every_subcommand_and_only_flags_that_exist() {
    let root = Cli::command();
    let mut covered = BTreeSet::new();
    let mut problems = Vec::new();
    for (line, entry) in synopsis_entries(&readme()) {
        let (paths, flags) = paths_and_flags(&entry);
        for path in paths {
            let Some(command) = subcommand(&root, &path) else {
                problems.push(format!(
                    "README.md:{line}: no subcommand `{}`",
                    path.join(" ")
                ));
                continue;
            };
            for flag in &flags {
                let name = flag.trim_start_matches("--");
                if !command.get_arguments().any(|a| a.get_long() == Some(name)) {
                    problems.push(format!(
                        "README.md:{line}: `convlab {}` has no {flag}",
                        path.join(" ")
                    ));
                }
            }
            covered.insert(path);
        }
    }
    let mut leaves = BTreeSet::new();
    leaf_paths(&root, Vec::new(), &mut leaves);
    for leaf in leaves.difference(&covered) {
        problems.push(format!("the synopsis lacks `convlab {}`", leaf.join(" ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What a quick command is, by its subcommand path; `None` for the commands only parsed.
fn quick_kind(args: &[String]) -> Option<String> {
    let words: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    if words.windows(2).any(|w| w == ["--device", "gpu"])
        || words.contains(&"--slurm")
        || words.contains(&"--distributed")
    {
        return None;
    }
    match words.as_slice() {
        [
            task @ ("fashion" | "classify"),
            action @ ("train" | "eval" | "predict" | "search"),
            ..,
        ] => Some(format!("{task} {action}")),
        ["report", ..] => Some("report".into()),
        ["export", ..] => {
            let format = flag_value(args, "--format").unwrap_or_default();
            Some(format!("export {format}"))
        }
        ["bench", ..] if flag_value(args, "--measure") == Some("peak") => Some("bench peak".into()),
        _ => None,
    }
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// Sets `flag`'s value, replacing the README's where it gives one.
fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
}

/// The quick command as it runs here (see the file's doc comment for the substitutions).
fn substituted(args: &[String], classes: &Path) -> Vec<String> {
    let mut args = args.to_vec();
    let (task, action) = (args[1].clone(), args[2].clone());
    if action == "train" {
        set_flag(&mut args, "--epochs", "1");
        set_flag(&mut args, "--limit", "64");
    }
    if action == "search" {
        set_flag(&mut args, "--trials", "2");
        set_flag(&mut args, "--epochs", "1");
        set_flag(&mut args, "--limit", "64");
    }
    let reads_data = ["train", "eval", "search"].contains(&action.as_str());
    if task == "fashion" && reads_data && !args.iter().any(|a| a == "--skip-checksums") {
        args.push("--skip-checksums".into());
    }
    if task == "classify" && args.iter().any(|a| a == "--data") {
        set_flag(&mut args, "--data", classes.to_str().unwrap());
    }
    args
}

/// A 28x28 grey picture of one of the synthetic classes, for a command naming an image file.
fn write_picture(path: &Path) {
    let (images, _) = common::synthetic::blocks(1, 9);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    image::GrayImage::from_raw(28, 28, images.pixels)
        .unwrap()
        .save(path)
        .unwrap();
}

/// `dir/<class>/<n>.png`: the synthetic Fashion-MNIST blocks as class folders.
fn write_class_folders(dir: &Path, count: usize) {
    let (images, labels) = common::synthetic::blocks(count, 3);
    for (n, (pixels, label)) in images.pixels.chunks(28 * 28).zip(labels).enumerate() {
        let folder = dir.join(format!("class-{label}"));
        std::fs::create_dir_all(&folder).unwrap();
        image::GrayImage::from_raw(28, 28, pixels.to_vec())
            .unwrap()
            .save(folder.join(format!("{n}.png")))
            .unwrap();
    }
}

#[test]
fn quick_readme_commands_run_end_to_end_on_synthetic_data() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = root.join("synthetic-data");
    common::synthetic::write_fashion_dir(&data.join("fashion-mnist"), 300, 50).unwrap();
    let classes: PathBuf = root.join("synthetic-classes");
    write_class_folders(&classes, 200);

    let mut ran = BTreeSet::new();
    for command in commands(&readme()) {
        let Some(kind) = quick_kind(&command.args) else {
            eprintln!("{}: parsed only (not quick)", command.shown());
            continue;
        };
        let args = substituted(&command.args, &classes);
        for image in args.iter().skip(1).filter(|a| {
            let lower = a.to_ascii_lowercase();
            lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg")
        }) {
            if !root.join(image).exists() {
                write_picture(&root.join(image));
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_convlab"))
            .args(&args[1..])
            .current_dir(root)
            .env("CONVLAB_DATA", &data)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}\nran as `{}`\nstdout: {}\nstderr: {}",
            command.shown(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            common::stderr(&out)
        );
        eprintln!("{}: ran as `{}`", command.shown(), args.join(" "));
        ran.insert(kind);
    }
    for needed in [
        "fashion train",
        "fashion eval",
        "fashion predict",
        "report",
        "export onnx",
        "export safetensors",
        "bench peak",
    ] {
        assert!(
            ran.contains(needed),
            "README.md has no quick `{needed}` command (ran: {ran:?})"
        );
    }
}
