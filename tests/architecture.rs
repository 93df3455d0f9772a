//! The architecture of `src/`, checked on every `cargo test` (the reasons and the picture are in
//! `docs/ARCHITECTURE.md`):
//!
//! - a top-level module imports only from its own layer or lower ones ([`LAYERS`]), so that
//!   dependencies point one way and each layer can be read and tested without the ones above
//!   it; a few peers of one layer must not import each other either ([`SEPARATE_PEERS`]); a new
//!   top-level module fails the test until it is placed in a layer;
//! - `clap` is named only in `src/cli/` and `src/main.rs`: everything below the command line
//!   takes plain values;
//! - only the command line writes to the terminal: outside `src/cli/` and `src/main.rs` no
//!   code but tests calls `println!`, `eprintln!`, `print!`, `eprint!` or `dbg!`, and no file
//!   names `indicatif`; the layers below report through `progress` (notices and bars), which
//!   the command line draws;
//! - `burn` is named only in `src/engine/burn/`: the rest of the crate does not depend on which
//!   engine computes;
//! - outside `src/engine/`, no path names `engine::cpu::..` or `engine::burn::..`: the rest of
//!   the crate uses what `engine` exports, so the engines' insides can change without it;
//! - no two files import each other, directly or around a circle ([`SourceTree::file_edges`]
//!   says what counts as an import: a `use` or a path in code naming an item of the crate is an
//!   edge to the file that defines the item, following re-exports to it; a folder's `mod.rs`
//!   (or `lib.rs`) declaring, re-exporting or calling its own children is not an edge), so that
//!   each file can be read knowing only the files below it.
//!
//! The sources are read with a small lexer (std only: `syn` would be a dependency) that skips
//! comments and string and character literals, so a doc link to `crate::models::ModelSpec` or a
//! message that mentions `burn::` counts for nothing. The lexer is tested at the bottom of this
//! file: the rules are only as trustworthy as what it finds.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::Path;

/// Top-level modules of `src/` by layer: a module may import from its own layer or a lower one,
/// never from a higher one.
const LAYERS: &[(u32, &[&str])] = &[
    (
        1,
        &[
            "data",
            "models",
            "metrics",
            "fsutil",
            "progress",
            "process",
            "distributed",
        ],
    ),
    (2, &["engine"]),
    (3, &["run"]),
    (4, &["train", "figures"]),
    (5, &["tasks"]),
    (6, &["predict", "report", "export", "bench"]),
    (7, &["cli"]),
];

/// Peers of one layer that must not import each other either: what both need belongs in a lower
/// layer, so that either can change without the other.
const SEPARATE_PEERS: &[(&str, &str)] = &[("train", "figures")];

/// The crate roots: `lib.rs` declares every module and `main.rs` runs the command line, so both
/// see every layer.
const EXEMPT_FROM_LAYERS: &[&str] = &["src/lib.rs", "src/main.rs"];

const CLAP_ALLOWED_IN: &[&str] = &["src/cli/", "src/main.rs"];
const TERMINAL_ALLOWED_IN: &[&str] = &["src/cli/", "src/main.rs"];
/// The macros that write to stdout or stderr.
const TERMINAL_MACROS: &[&str] = &["print", "println", "eprint", "eprintln", "dbg"];
const BURN_ALLOWED_IN: &[&str] = &["src/engine/burn/"];
const MPI_ALLOWED_IN: &[&str] = &["src/distributed/"];
/// The engines' own modules are the engine's business: the rest of the crate uses what
/// `engine` exports (`Model`, `Trainer`, the measurements `bench` takes).
const ENGINE_INTERNALS_ALLOWED_IN: &str = "src/engine/";

#[test]
fn imports_follow_the_layers() {
    let tree = SourceTree::read();
    let violations = layer_violations(&tree);
    assert!(
        violations.is_empty(),
        "imports against the layers (see docs/ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn clap_is_named_only_in_the_command_line() {
    let tree = SourceTree::read();
    let mentions = external_crate_mentions(&tree, "clap", CLAP_ALLOWED_IN);
    assert!(
        mentions.is_empty(),
        "clap outside src/cli/ and src/main.rs (see docs/ARCHITECTURE.md):\n{}",
        mentions.join("\n")
    );
}

#[test]
fn only_the_command_line_writes_to_the_terminal() {
    let tree = SourceTree::read();
    let mut writes = external_crate_mentions(&tree, "indicatif", TERMINAL_ALLOWED_IN);
    writes.extend(terminal_writes(&tree));
    assert!(
        writes.is_empty(),
        "terminal output outside src/cli/ and src/main.rs (report through crate::progress; \
         see docs/ARCHITECTURE.md):\n{}",
        writes.join("\n")
    );
}

#[test]
fn burn_is_named_only_in_the_burn_engine() {
    let tree = SourceTree::read();
    let mentions = external_crate_mentions(&tree, "burn", BURN_ALLOWED_IN);
    assert!(
        mentions.is_empty(),
        "burn outside src/engine/burn/ (see docs/ARCHITECTURE.md):\n{}",
        mentions.join("\n")
    );
}

#[test]
fn mpi_is_named_only_where_the_ranks_connect() {
    let tree = SourceTree::read();
    let mentions = external_crate_mentions(&tree, "mpi", MPI_ALLOWED_IN);
    assert!(
        mentions.is_empty(),
        "mpi outside src/distributed/ (see docs/ARCHITECTURE.md):\n{}",
        mentions.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let tree = SourceTree::read();
    let circles = circles_described(&tree);
    assert!(
        circles.is_empty(),
        "files that import each other in a circle (what both need belongs in a file of its \
         own, or in the one that owns it):\n{}",
        circles.join("\n")
    );
}

#[test]
fn only_the_engine_names_its_engines_internals() {
    let tree = SourceTree::read();
    let reaches = engine_internal_paths(&tree);
    assert!(
        reaches.is_empty(),
        "engine::cpu or engine::burn named outside src/engine/ (use what engine/mod.rs \
         exports; see docs/ARCHITECTURE.md):\n{}",
        reaches.join("\n")
    );
}

/// One line per circle: its files, then each import that closes it.
fn circles_described(tree: &SourceTree) -> Vec<String> {
    import_circles(tree.files.len(), &tree.file_edges())
        .into_iter()
        .map(|circle| {
            let files: BTreeSet<&str> = circle
                .iter()
                .map(|edge| tree.files[edge.from].path.as_str())
                .collect();
            let imports: Vec<String> = circle
                .iter()
                .map(|edge| {
                    format!(
                        "    {}:{} -> {} (`{}`)",
                        tree.files[edge.from].path, edge.line, tree.files[edge.to].path, edge.path
                    )
                })
                .collect();
            format!(
                "  {}:\n{}",
                files.into_iter().collect::<Vec<_>>().join(", "),
                imports.join("\n")
            )
        })
        .collect()
}

/// Paths outside `src/engine/` that name `engine::cpu::..` or `engine::burn::..`.
fn engine_internal_paths(tree: &SourceTree) -> Vec<String> {
    let mut reaches = Vec::new();
    for file in &tree.files {
        if file.path.starts_with(ENGINE_INTERNALS_ALLOWED_IN) {
            continue;
        }
        let mut lines = BTreeSet::new();
        for path in &file.scan.paths {
            let Some(absolute) = tree.absolute_path(file, path) else {
                continue;
            };
            let internal = matches!(
                absolute
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["engine", "cpu" | "burn", ..]
            );
            let line = path.segments.first().map_or(0, |segment| segment.line);
            if internal && lines.insert(line) {
                let code = file.text.lines().nth(line - 1).unwrap_or("").trim();
                reaches.push(format!("  {}:{line}: {code}", file.path));
            }
        }
    }
    reaches
}

fn layer_of(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|&(layer, _)| layer)
}

/// Why `importer` may not import from `imported`, or `Ok` when it may.
fn judge_import(importer: &str, imported: &str) -> Result<(), String> {
    if importer == imported {
        return Ok(());
    }
    let Some(importer_layer) = layer_of(importer) else {
        return Err(format!("{importer} is not in the layer table"));
    };
    let Some(imported_layer) = layer_of(imported) else {
        return Err(format!(
            "{importer} (layer {importer_layer}) imports {imported} (not in the layer table)"
        ));
    };
    if imported_layer > importer_layer {
        return Err(format!(
            "{importer} (layer {importer_layer}) imports {imported} (layer {imported_layer})"
        ));
    }
    let separate_peers = SEPARATE_PEERS
        .iter()
        .find(|&&pair| pair == (importer, imported) || pair == (imported, importer));
    match separate_peers {
        Some((one, other)) => Err(format!(
            "{importer} (layer {importer_layer}) imports {imported} (layer {imported_layer}; \
             {one} and {other} must not import each other)"
        )),
        None => Ok(()),
    }
}

fn layer_violations(tree: &SourceTree) -> Vec<String> {
    let mut violations = Vec::new();
    let mut unplaced_modules = HashSet::new();
    for file in &tree.files {
        if EXEMPT_FROM_LAYERS.contains(&file.path.as_str()) {
            continue;
        }
        let Some(module) = file.module_path.first() else {
            continue;
        };
        if layer_of(module).is_none() {
            if unplaced_modules.insert(module) {
                let single_file = format!("src/{module}.rs");
                let location = if file.path == single_file {
                    single_file
                } else {
                    format!("src/{module}/")
                };
                violations.push(format!(
                    "  {location}: top-level module {module} is not in the layer table: add it to \
                     LAYERS in tests/architecture.rs and to docs/ARCHITECTURE.md"
                ));
            }
            continue;
        }
        // `use crate::train::{a, b};` is one import of `train`, reported once.
        let mut reported = HashSet::new();
        for import in crate_imports(&file.scan, &file.module_path) {
            let verdict = tree
                .module_named_by(&import.root_name)
                .and_then(|imported| judge_import(module, &imported));
            let Err(why) = verdict else {
                continue;
            };
            let line = import.line;
            if reported.insert((line, why.clone())) {
                violations.push(format!("  {}:{line}: {why} (`{}`)", file.path, import.path));
            }
        }
    }
    violations
}

/// Every place outside `allowed_in` (path prefixes) where `crate_name` is named as a crate.
fn external_crate_mentions(
    tree: &SourceTree,
    crate_name: &str,
    allowed_in: &[&str],
) -> Vec<String> {
    let mut mentions = Vec::new();
    for file in &tree.files {
        if allowed_in
            .iter()
            .any(|allowed| file.path.starts_with(allowed))
        {
            continue;
        }
        let lines: Vec<&str> = file.text.lines().collect();
        for line in lines_naming_crate(&file.scan, crate_name) {
            let code = lines.get(line - 1).map_or("", |code| code.trim());
            mentions.push(format!("  {}:{line}: {code}", file.path));
        }
    }
    mentions
}

/// Every call of a [`TERMINAL_MACROS`] macro outside [`TERMINAL_ALLOWED_IN`] and outside test
/// code: a file named `tests.rs` (each is a `#[cfg(test)] mod tests;`) and the item after a
/// `#[cfg(test)]`, up to its closing brace or semicolon.
fn terminal_writes(tree: &SourceTree) -> Vec<String> {
    let mut writes = Vec::new();
    for file in &tree.files {
        let allowed = TERMINAL_ALLOWED_IN
            .iter()
            .any(|allowed| file.path.starts_with(allowed));
        if allowed || file.path.ends_with("/tests.rs") {
            continue;
        }
        let tokens = tokenize(&file.text);
        let tests = test_items(&tokens);
        let lines: Vec<&str> = file.text.lines().collect();
        for (i, pair) in tokens.windows(2).enumerate() {
            let TokenKind::Ident(name) = &pair[0].kind else {
                continue;
            };
            let is_call = TERMINAL_MACROS.contains(&name.as_str())
                && pair[1].kind == TokenKind::Punct('!')
                && (i == 0 || tokens[i - 1].kind != TokenKind::PathSep || is_std_path(&tokens, i));
            if is_call && !tests.iter().any(|range| range.contains(&i)) {
                let line = pair[0].line;
                let code = lines.get(line - 1).map_or("", |code| code.trim());
                writes.push(format!("  {}:{line}: {code}", file.path));
            }
        }
    }
    writes
}

/// Whether the macro at token `i` is reached through `std::` (`std::println!`).
fn is_std_path(tokens: &[Token], i: usize) -> bool {
    i >= 2 && tokens[i - 2].kind == TokenKind::Ident("std".to_string())
}

/// The token ranges of the items marked `#[cfg(test)]`: from the attribute to the end of the
/// item's first brace block, or to its semicolon if it has none.
fn test_items(tokens: &[Token]) -> Vec<std::ops::Range<usize>> {
    let kinds: Vec<&TokenKind> = tokens.iter().map(|t| &t.kind).collect();
    let ident = |name: &str| TokenKind::Ident(name.to_string());
    let marker = [
        TokenKind::Punct('#'),
        TokenKind::Punct('['),
        ident("cfg"),
        TokenKind::Punct('('),
        ident("test"),
        TokenKind::Punct(')'),
        TokenKind::Punct(']'),
    ];
    let mut ranges = Vec::new();
    let mut i = 0;
    while i + marker.len() <= kinds.len() {
        if !kinds[i..i + marker.len()].iter().copied().eq(marker.iter()) {
            i += 1;
            continue;
        }
        let mut end = i + marker.len();
        let mut depth = 0usize;
        while end < kinds.len() {
            match kinds[end] {
                TokenKind::Punct('{') => depth += 1,
                TokenKind::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                TokenKind::Punct(';') if depth == 0 => break,
                _ => {}
            }
            end += 1;
        }
        ranges.push(i..end + 1);
        i = end + 1;
    }
    ranges
}

/// A file's import of another file of the crate: `from` names an item that `to` defines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FileEdge {
    from: usize,
    to: usize,
    line: usize,
    path: String,
}

/// How many re-exports a path is followed through before it is taken to end where it stands.
const MAX_REEXPORT_HOPS: usize = 16;

impl SourceTree {
    /// The file that module `module_path` lives in (`src/lib.rs` for the crate root).
    fn file_of_module(&self, module_path: &[String]) -> Option<usize> {
        self.files
            .iter()
            .position(|file| file.module_path == module_path && file.path != "src/main.rs")
    }

    /// The path that `path`, written in `file` (whose module is `module_path`), names from the
    /// crate root, or `None` for an external crate, a local name or a place inside the file.
    /// `main.rs` reaches the library as `convlab::`.
    fn absolute_path(&self, file: &SourceFile, path: &SourcePath) -> Option<Vec<String>> {
        let names: Vec<String> = path.segments.iter().map(|s| s.name.clone()).collect();
        let in_main = file.path == "src/main.rs";
        let within = |module: &[String], rest: &[String]| [module, rest].concat();
        match names.first()?.as_str() {
            "crate" if !in_main => Some(names[1..].to_vec()),
            "convlab" if in_main => Some(names[1..].to_vec()),
            "super" if !in_main => {
                let supers = names.iter().take_while(|name| *name == "super").count();
                let climbed = supers.checked_sub(path.inline_module_depth)?;
                if climbed == 0 {
                    return None;
                }
                let kept = file.module_path.len().checked_sub(climbed)?;
                Some(within(&file.module_path[..kept], &names[supers..]))
            }
            "self" if path.inline_module_depth == 0 && !in_main => {
                Some(within(&file.module_path, &names[1..]))
            }
            first
                if path.inline_module_depth == 0
                    && !in_main
                    && !path.leading_colons
                    && file.scan.declared_modules.iter().any(|m| m == first) =>
            {
                Some(within(&file.module_path, &names))
            }
            _ => None,
        }
    }

    /// The file that defines what `absolute` (a path from the crate root) names: the deepest
    /// module file on the path, or, where that file only brings the next name in with a `use`,
    /// the file that `use` leads to (a re-export is a passage, not the item's home).
    fn defining_file(&self, absolute: &[String], hops: usize) -> Option<usize> {
        let mut depth = 0;
        let mut file = self.file_of_module(&[])?;
        while depth < absolute.len() {
            match self.file_of_module(&absolute[..=depth]) {
                Some(deeper) => {
                    file = deeper;
                    depth += 1;
                }
                None => break,
            }
        }
        let Some(name) = absolute.get(depth) else {
            return Some(file);
        };
        let source = &self.files[file];
        let brought_in = source.scan.paths.iter().find(|path| {
            path.inline_module_depth == 0 && path.binding.as_deref() == Some(name.as_str())
        });
        match brought_in {
            Some(import) if hops < MAX_REEXPORT_HOPS => {
                let mut target = self.absolute_path(source, import)?;
                target.extend(absolute[depth + 1..].iter().cloned());
                self.defining_file(&target, hops + 1)
            }
            _ => Some(file),
        }
    }

    /// Every import of one file by another: a `use` or a path in code that names an item of
    /// the crate counts as an edge to the file that defines the item. A name that a `mod.rs`
    /// re-exports (`pub use geometry::ConvGeometry`) leads on to the file it comes from: the
    /// re-export is a passage, not the item's home. Not counted: `mod` declarations, and
    /// whatever a folder's `mod.rs` (or `lib.rs`) names inside its own folder (it declares,
    /// re-exports and composes its children, which may in turn use what it defines); paths
    /// that stay inside the file (`mod tests { use super::*; }`) and external crates.
    fn file_edges(&self) -> BTreeSet<FileEdge> {
        let mut edges = BTreeSet::new();
        for (from, file) in self.files.iter().enumerate() {
            let is_folder_front = file.path.ends_with("/mod.rs") || file.path == "src/lib.rs";
            for path in &file.scan.paths {
                let Some(absolute) = self.absolute_path(file, path) else {
                    continue;
                };
                let inside_own_folder = is_folder_front
                    && absolute.starts_with(&file.module_path)
                    && absolute.len() > file.module_path.len();
                if inside_own_folder {
                    continue;
                }
                let Some(to) = self.defining_file(&absolute, 0) else {
                    continue;
                };
                if to != from {
                    edges.insert(FileEdge {
                        from,
                        to,
                        line: path.segments.last().map_or(0, |segment| segment.line),
                        path: path
                            .segments
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join("::"),
                    });
                }
            }
        }
        edges
    }
}

/// The groups of files that import each other in a circle (strongly connected components of
/// more than one file), each as the imports among its files.
fn import_circles(file_count: usize, edges: &BTreeSet<FileEdge>) -> Vec<Vec<FileEdge>> {
    let mut imports_any = vec![false; file_count];
    for edge in edges {
        imports_any[edge.from] = true;
    }
    // Kosaraju: files reachable from a file and able to reach it back.
    let reach = |start: usize, forward: bool| {
        let mut seen = vec![false; file_count];
        let mut stack = vec![start];
        while let Some(file) = stack.pop() {
            if std::mem::replace(&mut seen[file], true) {
                continue;
            }
            for edge in edges {
                let (here, next) = if forward {
                    (edge.from, edge.to)
                } else {
                    (edge.to, edge.from)
                };
                if here == file && !seen[next] {
                    stack.push(next);
                }
            }
        }
        seen
    };
    let mut placed = vec![false; file_count];
    let mut circles = Vec::new();
    for start in 0..file_count {
        if placed[start] || !imports_any[start] {
            continue;
        }
        let (forward, backward) = (reach(start, true), reach(start, false));
        let members: Vec<usize> = (0..file_count)
            .filter(|&file| forward[file] && backward[file])
            .collect();
        for &member in &members {
            placed[member] = true;
        }
        if members.len() > 1 {
            circles.push(
                edges
                    .iter()
                    .filter(|edge| members.contains(&edge.from) && members.contains(&edge.to))
                    .cloned()
                    .collect(),
            );
        }
    }
    circles
}

/// The crate's sources, read once per test.
struct SourceTree {
    files: Vec<SourceFile>,
    /// First path components under `src/` (`engine` for `src/engine/cpu/conv.rs`).
    top_level_modules: BTreeSet<String>,
    /// Names that `src/lib.rs` re-exports at the crate root, with the module each comes from
    /// (`Error` -> `error` for `pub use error::Error;`), so that `crate::Error` is placed too.
    root_reexports: BTreeMap<String, String>,
}

struct SourceFile {
    /// Relative to the crate root, with `/` separators: `src/engine/cpu/conv.rs`.
    path: String,
    /// `["engine", "cpu", "conv"]`; empty for the crate roots `src/lib.rs` and `src/main.rs`.
    module_path: Vec<String>,
    text: String,
    scan: Scan,
}

impl SourceTree {
    fn read() -> SourceTree {
        let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut relative_paths = Vec::new();
        collect_rust_files(&crate_root.join("src"), "src", &mut relative_paths);
        relative_paths.sort();
        assert!(
            !relative_paths.is_empty(),
            "no .rs files under {}/src",
            crate_root.display()
        );
        SourceTree::from_sources(relative_paths.into_iter().map(|path| {
            let text = fs::read_to_string(crate_root.join(&path))
                .unwrap_or_else(|e| panic!("reading {path}: {e}"));
            (path, text)
        }))
    }

    /// The tree of `(path under the crate, text)` files.
    fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> SourceTree {
        let files: Vec<SourceFile> = sources
            .into_iter()
            .map(|(path, text)| SourceFile {
                module_path: module_path_of(&path),
                scan: scan(&text),
                text,
                path,
            })
            .collect();
        let top_level_modules: BTreeSet<String> = files
            .iter()
            .filter_map(|file| file.module_path.first().cloned())
            .collect();
        let root_reexports = files
            .iter()
            .find(|file| file.path == "src/lib.rs")
            .map(|lib| root_reexports(&lib.scan, &top_level_modules))
            .unwrap_or_default();
        SourceTree {
            files,
            top_level_modules,
            root_reexports,
        }
    }

    /// The top-level module that `crate::<name>` reaches.
    fn module_named_by(&self, name: &str) -> Result<String, String> {
        if self.top_level_modules.contains(name) {
            return Ok(name.to_string());
        }
        self.root_reexports.get(name).cloned().ok_or_else(|| {
            format!(
                "crate::{name} is neither a module under src/ nor re-exported from one by \
                 src/lib.rs, so no layer can be given to it"
            )
        })
    }
}

fn collect_rust_files(dir: &Path, relative_dir: &str, out: &mut Vec<String>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{relative_dir}/{name}");
        let file_type = entry
            .file_type()
            .unwrap_or_else(|e| panic!("reading {relative}: {e}"));
        if file_type.is_dir() {
            collect_rust_files(&entry.path(), &relative, out);
        } else if name.ends_with(".rs") {
            out.push(relative);
        }
    }
}

/// `src/engine/cpu/mod.rs` -> `["engine", "cpu"]`, `src/bench.rs` -> `["bench"]`.
fn module_path_of(relative_path: &str) -> Vec<String> {
    let under_src = relative_path
        .strip_prefix("src/")
        .and_then(|path| path.strip_suffix(".rs"))
        .unwrap_or_else(|| panic!("{relative_path} is not a .rs file under src/"));
    let mut components: Vec<String> = under_src.split('/').map(str::to_string).collect();
    if components.last().is_some_and(|last| last == "mod") {
        components.pop();
    }
    if components == ["lib"] || components == ["main"] {
        components.clear();
    }
    components
}

fn root_reexports(lib: &Scan, top_level_modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    lib.paths
        .iter()
        .filter_map(|path| {
            let binding = path.binding.as_deref()?;
            let names: Vec<&str> = path.segments.iter().map(|s| s.name.as_str()).collect();
            let module = match names.as_slice() {
                ["crate" | "self", module, _, ..] | [module, _, ..] => *module,
                _ => return None,
            };
            (top_level_modules.contains(module) && binding != "*")
                .then(|| (binding.to_string(), module.to_string()))
        })
        .collect()
}

/// A path into the crate root: `crate::<root_name>::...`, or a `super::` that climbs that far.
#[derive(Debug)]
struct CrateImport {
    /// Line of `root_name`, which in a `use` group spanning lines is the line of that branch.
    line: usize,
    root_name: String,
    /// The whole path (a `use` group flattened to this branch), for the failure message.
    path: String,
}

fn crate_imports(scan: &Scan, module_path: &[String]) -> Vec<CrateImport> {
    scan.paths
        .iter()
        .filter_map(|path| {
            let names: Vec<&str> = path.segments.iter().map(|s| s.name.as_str()).collect();
            let root_index = match names.first() {
                Some(&"crate") => 1,
                Some(&"super") => {
                    let supers = names.iter().take_while(|&&name| name == "super").count();
                    let module_depth = module_path.len() + path.inline_module_depth;
                    if supers < module_depth {
                        return None;
                    }
                    supers
                }
                _ => return None,
            };
            let root = path.segments.get(root_index)?;
            if root.name == "self" || root.name == "*" {
                return None;
            }
            Some(CrateImport {
                line: root.line,
                root_name: root.name.clone(),
                path: names.join("::"),
            })
        })
        .collect()
}

/// Lines where `crate_name` is named as the external crate: a path that starts with it
/// (`burn::`, `use burn::{..}`, `::burn::`), unless the file binds the name to one of its own
/// modules (`mod burn;`, `use super::burn::{self, ..}`) which then shadows the crate.
fn lines_naming_crate(scan: &Scan, crate_name: &str) -> BTreeSet<usize> {
    let bound_locally = scan.declared_modules.iter().any(|m| m == crate_name)
        || scan
            .paths
            .iter()
            .any(|path| path.segments.len() >= 2 && path.binding.as_deref() == Some(crate_name));
    scan.paths
        .iter()
        .filter(|path| path.leading_colons || !bound_locally)
        .filter_map(|path| path.segments.first())
        .filter(|first| first.name == crate_name)
        .map(|first| first.line)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Lexer and path scanner.

#[derive(Clone, Debug, PartialEq, Eq)]
enum TokenKind {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string, character or number literal, or a lifetime: kept as a token so that what
    /// stands on either side of it is never taken as adjacent.
    Literal,
}

#[derive(Clone, Debug)]
struct Token {
    kind: TokenKind,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Tokens of Rust source, comments dropped.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        let kind = match c {
            _ if c.is_whitespace() => {
                i += 1;
                None
            }
            '/' if next == Some('/') => {
                i = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |end| i + end);
                None
            }
            '/' if next == Some('*') => {
                i = end_of_block_comment(&chars, i);
                None
            }
            '"' => {
                i = end_of_quoted(&chars, i + 1, '"');
                Some(TokenKind::Literal)
            }
            '\'' => {
                i = end_of_char_or_lifetime(&chars, i);
                Some(TokenKind::Literal)
            }
            ':' if next == Some(':') => {
                i += 2;
                Some(TokenKind::PathSep)
            }
            _ if c.is_ascii_digit() => {
                i += 1;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                Some(TokenKind::Literal)
            }
            _ if is_ident_start(c) => {
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let (end, kind) = ident_or_prefixed_literal(&chars, i, word);
                i = end;
                Some(kind)
            }
            _ => {
                i += 1;
                Some(TokenKind::Punct(c))
            }
        };
        if let Some(kind) = kind {
            tokens.push(Token { kind, line });
        }
        line += chars[start..i].iter().filter(|&&c| c == '\n').count();
    }
    tokens
}

/// After a word ending at `end`: a literal with a prefix (`b"..."`, `br#"..."#`, `c"..."`,
/// `b'x'`), a raw identifier (`r#type`, taken as `type`) or the word itself.
fn ident_or_prefixed_literal(chars: &[char], end: usize, word: String) -> (usize, TokenKind) {
    let next = chars.get(end).copied();
    match (word.as_str(), next) {
        ("b" | "c", Some('"')) => (end_of_quoted(chars, end + 1, '"'), TokenKind::Literal),
        ("b", Some('\'')) => (end_of_quoted(chars, end + 1, '\''), TokenKind::Literal),
        ("r" | "br" | "cr", Some('"' | '#')) => {
            let hashes = chars[end..].iter().take_while(|&&c| c == '#').count();
            let after_hashes = end + hashes;
            match chars.get(after_hashes) {
                Some('"') => (
                    end_of_raw_string(chars, after_hashes + 1, hashes),
                    TokenKind::Literal,
                ),
                Some(&c) if word == "r" && hashes == 1 && is_ident_start(c) => {
                    let mut raw_end = after_hashes;
                    while raw_end < chars.len() && is_ident_continue(chars[raw_end]) {
                        raw_end += 1;
                    }
                    let name = chars[after_hashes..raw_end].iter().collect();
                    (raw_end, TokenKind::Ident(name))
                }
                _ => (end, TokenKind::Ident(word)),
            }
        }
        _ => (end, TokenKind::Ident(word)),
    }
}

/// Index after the `*/` that closes the comment opened at `start` (they nest in Rust).
fn end_of_block_comment(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied()) {
            ('/', Some('*')) => {
                depth += 1;
                i += 2;
            }
            ('*', Some('/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index after the `quote` that closes a literal whose contents start at `from`.
fn end_of_quoted(chars: &[char], from: usize, quote: char) -> usize {
    let mut i = from;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index after the `"` followed by `hashes` `#` that closes a raw string.
fn end_of_raw_string(chars: &[char], from: usize, hashes: usize) -> usize {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    chars.len()
}

/// A `'` opens a character literal (`'a'`, `'\n'`, `'"'`) or a lifetime or label (`'a`).
fn end_of_char_or_lifetime(chars: &[char], start: usize) -> usize {
    match (chars.get(start + 1), chars.get(start + 2)) {
        (Some('\\'), _) => end_of_quoted(chars, start + 1, '\''),
        (Some(_), Some('\'')) => start + 3,
        _ => {
            let mut i = start + 1;
            while i < chars.len() && is_ident_continue(chars[i]) {
                i += 1;
            }
            i
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    name: String,
    line: usize,
}

/// One path of the source: a branch of a `use` tree, flattened (`use a::{b, c::d}` gives
/// `a::b` and `a::c::d`), or a path in code (`crate::fsutil::write_atomic`, `clap::Args`).
#[derive(Clone, Debug)]
struct SourcePath {
    segments: Vec<Segment>,
    /// Written `::burn::..`, which names an external crate whatever the scope holds.
    leading_colons: bool,
    /// The name a `use` binds (the alias, or the last segment; `*` for a glob); `None` for
    /// paths in code.
    binding: Option<String>,
    /// Inline modules (`mod tests { .. }`) around the path: each one more `super` to climb.
    inline_module_depth: usize,
}

#[derive(Debug, Default)]
struct Scan {
    paths: Vec<SourcePath>,
    /// Names declared with `mod name;` or `mod name { .. }`.
    declared_modules: Vec<String>,
}

fn scan(source: &str) -> Scan {
    let tokens = tokenize(source);
    let kind_at = |i: usize| tokens.get(i).map(|token| &token.kind);
    let ident_at = |i: usize| match kind_at(i) {
        Some(TokenKind::Ident(name)) => Some(name.as_str()),
        _ => None,
    };
    let mut result = Scan::default();
    let mut brace_depth = 0;
    // Brace depths at which the inline modules around the current token were opened.
    let mut inline_modules: Vec<usize> = Vec::new();
    let mut inline_module_brace = None;
    let mut i = 0;
    while i < tokens.len() {
        let inline_module_depth = inline_modules.len();
        let follows_path_sep = i > 0 && kind_at(i - 1) == Some(&TokenKind::PathSep);
        match &tokens[i].kind {
            TokenKind::Punct('{') => {
                brace_depth += 1;
                if inline_module_brace == Some(i) {
                    inline_modules.push(brace_depth);
                }
                i += 1;
            }
            TokenKind::Punct('}') => {
                if inline_modules.last() == Some(&brace_depth) {
                    inline_modules.pop();
                }
                brace_depth = brace_depth.saturating_sub(1);
                i += 1;
            }
            // `use<'a>` is precise capturing in `impl Trait + use<'a>`, not an import.
            TokenKind::Ident(word)
                if word == "use" && kind_at(i + 1) != Some(&TokenKind::Punct('<')) =>
            {
                let mut tree = UseTreeParser {
                    tokens: &tokens,
                    inline_module_depth,
                    paths: &mut result.paths,
                };
                i = tree.parse(i + 1, &[], false);
            }
            TokenKind::Ident(word) if word == "mod" => {
                if let Some(name) = ident_at(i + 1) {
                    result.declared_modules.push(name.to_string());
                    if kind_at(i + 2) == Some(&TokenKind::Punct('{')) {
                        inline_module_brace = Some(i + 2);
                    }
                }
                i += 1;
            }
            TokenKind::Ident(word)
                if word == "extern" && ident_at(i + 1) == Some("crate") && !follows_path_sep =>
            {
                if let Some(name) = ident_at(i + 2) {
                    let line = tokens[i + 2].line;
                    result.paths.push(SourcePath {
                        segments: vec![Segment {
                            name: name.to_string(),
                            line,
                        }],
                        leading_colons: true,
                        binding: None,
                        inline_module_depth,
                    });
                }
                i += 3;
            }
            TokenKind::Ident(_)
                if !follows_path_sep && kind_at(i + 1) == Some(&TokenKind::PathSep) =>
            {
                i = push_code_path(&tokens, i, false, inline_module_depth, &mut result.paths);
            }
            TokenKind::PathSep
                if ident_at(i + 1).is_some()
                    && !matches!(
                        kind_at(i.wrapping_sub(1)),
                        Some(TokenKind::Ident(_) | TokenKind::Punct('>'))
                    ) =>
            {
                i = push_code_path(&tokens, i + 1, true, inline_module_depth, &mut result.paths);
            }
            _ => i += 1,
        }
    }
    result
}

/// Records the path in code whose first segment is at `start`; returns the index after it.
fn push_code_path(
    tokens: &[Token],
    start: usize,
    leading_colons: bool,
    inline_module_depth: usize,
    paths: &mut Vec<SourcePath>,
) -> usize {
    let mut segments = Vec::new();
    let mut i = start;
    while let Some(Token {
        kind: TokenKind::Ident(name),
        line,
    }) = tokens.get(i)
    {
        segments.push(Segment {
            name: name.clone(),
            line: *line,
        });
        if tokens.get(i + 1).map(|token| &token.kind) != Some(&TokenKind::PathSep) {
            i += 1;
            break;
        }
        i += 2;
    }
    paths.push(SourcePath {
        segments,
        leading_colons,
        binding: None,
        inline_module_depth,
    });
    i
}

struct UseTreeParser<'a> {
    tokens: &'a [Token],
    inline_module_depth: usize,
    paths: &'a mut Vec<SourcePath>,
}

impl UseTreeParser<'_> {
    fn kind_at(&self, i: usize) -> Option<&TokenKind> {
        self.tokens.get(i).map(|token| &token.kind)
    }

    /// Flattens the use tree at `start` onto `prefix`; returns the index after it. Stops early,
    /// without panicking, on anything that is not a use tree.
    fn parse(&mut self, start: usize, prefix: &[Segment], mut leading_colons: bool) -> usize {
        let mut segments = prefix.to_vec();
        let mut i = start;
        if segments.is_empty() && self.kind_at(i) == Some(&TokenKind::PathSep) {
            leading_colons = true;
            i += 1;
        }
        loop {
            match self.kind_at(i).cloned() {
                Some(TokenKind::Ident(name)) if name == "self" && !segments.is_empty() => {
                    let bound = segments.last().map(|segment| segment.name.clone());
                    return self.finish(i + 1, segments, leading_colons, bound);
                }
                Some(TokenKind::Ident(name)) => {
                    segments.push(Segment {
                        name: name.clone(),
                        line: self.tokens[i].line,
                    });
                    if self.kind_at(i + 1) == Some(&TokenKind::PathSep) {
                        i += 2;
                        continue;
                    }
                    return self.finish(i + 1, segments, leading_colons, Some(name));
                }
                Some(TokenKind::Punct('*')) => {
                    segments.push(Segment {
                        name: "*".to_string(),
                        line: self.tokens[i].line,
                    });
                    return self.finish(i + 1, segments, leading_colons, Some("*".to_string()));
                }
                Some(TokenKind::Punct('{')) => {
                    i += 1;
                    loop {
                        match self.kind_at(i) {
                            Some(TokenKind::Punct('}')) => return i + 1,
                            Some(TokenKind::Punct(',')) => i += 1,
                            None => return i,
                            Some(_) => {
                                let after = self.parse(i, &segments, leading_colons);
                                if after == i {
                                    return i;
                                }
                                i = after;
                            }
                        }
                    }
                }
                _ => return i,
            }
        }
    }

    /// Records a complete branch, renamed by an `as` at `i` if there is one.
    fn finish(
        &mut self,
        mut i: usize,
        segments: Vec<Segment>,
        leading_colons: bool,
        mut binding: Option<String>,
    ) -> usize {
        if matches!(self.kind_at(i), Some(TokenKind::Ident(word)) if word == "as") {
            if let Some(TokenKind::Ident(alias)) = self.kind_at(i + 1) {
                binding = Some(alias.clone());
            }
            i += 2;
        }
        self.paths.push(SourcePath {
            segments,
            leading_colons,
            binding,
            inline_module_depth: self.inline_module_depth,
        });
        i
    }
}

// ---------------------------------------------------------------------------------------------
// The scanner's own tests.

/// (line, module) of every `crate::` import in `source`, read as a file of module `module_path`.
fn imports_in(source: &str, module_path: &[&str]) -> Vec<(usize, String)> {
    let module_path: Vec<String> = module_path.iter().map(|m| m.to_string()).collect();
    crate_imports(&scan(source), &module_path)
        .into_iter()
        .map(|import| (import.line, import.root_name))
        .collect()
}

fn owned(expected: &[(usize, &str)]) -> Vec<(usize, String)> {
    expected
        .iter()
        .map(|&(line, module)| (line, module.to_string()))
        .collect()
}

#[test]
fn scanner_finds_grouped_and_inline_crate_paths_but_not_comments_or_strings() {
    let source = r##"//! See [`ModelSpec`](crate::models::ModelSpec).
use crate::{
    data::DataError,
    figures::{FigureError, segmentation::{self, draw}},
};
use crate::run::dir::RunDir;
/// Calls `crate::hidden::f`.
fn f() {
    // crate::commented::out
    /* crate::block /* nested crate::inner */ crate::still_comment */
    let s = "crate::in_string";
    let r = r#"crate::in_raw_string "quoted" "#;
    let c = '"';
    crate::progress::count_bar(1, &format!("{}", crate::fsutil::NAME));
    let b = b"crate::in_bytes";
}
pub(crate) fn g<'a>(x: &'a str) -> &'a str { x }
"##;
    assert_eq!(
        imports_in(source, &["tasks"]),
        owned(&[
            (3, "data"),
            (4, "figures"),
            (4, "figures"),
            (4, "figures"),
            (6, "run"),
            (14, "progress"),
            (14, "fsutil"),
        ])
    );
}

#[test]
fn scanner_reports_the_import_path_as_written() {
    let imports = crate_imports(
        &scan("use crate::{a::b::{c, d as e}};\nfn f() { crate::x::y(); }"),
        &["m".to_string()],
    );
    let paths: Vec<&str> = imports.iter().map(|import| import.path.as_str()).collect();
    assert_eq!(paths, ["crate::a::b::c", "crate::a::b::d", "crate::x::y"]);
}

#[test]
fn super_counts_as_a_crate_path_only_where_it_climbs_to_the_root() {
    let source = "use super::conv;
use super::super::models::Spec;
fn f() { super::super::train::fit(); }
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::engine::Batch;
    use super::super::super::metrics::Accuracy;
}
use super::super::figures::Grid;
";
    // As `engine::cpu`, two `super`s reach the root; in its `mod tests`, three do.
    assert_eq!(
        imports_in(source, &["engine", "cpu"]),
        owned(&[(2, "models"), (3, "train"), (8, "metrics"), (10, "figures")])
    );
    // As the top-level `bench`, one `super` reaches the root, and two from its `mod tests`.
    let top_level = "use super::train::Fit;
mod tests {
    use super::*;
    use super::super::data::Batch;
}
";
    assert_eq!(
        imports_in(top_level, &["bench"]),
        owned(&[(1, "train"), (4, "data")])
    );
}

#[test]
fn scanner_names_the_burn_crate_only_at_the_start_of_a_path() {
    let source = r#"use burn::prelude::*;
use crate::engine::burn::Net;
fn f() {
    let net = burn_from_cpu(x);
    let kind = EngineKind::Burn;
    // burn::tensor in a comment
    let s = "burn::tensor in a string";
    let t: Vec<::burn::tensor::Tensor> = Vec::new();
    let _ = engine::burn::device();
}
#[derive(clap::Args)]
struct A;
"#;
    let scan = scan(source);
    assert_eq!(lines_naming_crate(&scan, "burn"), BTreeSet::from([1, 8]));
    assert_eq!(lines_naming_crate(&scan, "clap"), BTreeSet::from([11]));
}

#[test]
fn a_module_bound_to_the_name_burn_shadows_the_crate() {
    let imported = scan(
        "use super::burn::{self, BurnModel};\nfn f() { burn::cpu_from_record(); ::burn::x(); }",
    );
    assert_eq!(lines_naming_crate(&imported, "burn"), BTreeSet::from([2]));
    let declared = scan("pub mod burn;\nfn f() { burn::check_device(); }");
    assert_eq!(lines_naming_crate(&declared, "burn"), BTreeSet::new());
    let crate_itself = scan("use burn::{self, tensor};\nfn f() { burn::x(); }");
    assert_eq!(
        lines_naming_crate(&crate_itself, "burn"),
        BTreeSet::from([1, 2])
    );
    let extern_crate = scan("extern crate burn as engine_crate;");
    assert_eq!(
        lines_naming_crate(&extern_crate, "burn"),
        BTreeSet::from([1])
    );
}

#[test]
fn lexer_keeps_line_numbers_through_multi_line_comments_and_strings() {
    let source = "/* one\ntwo */ let s = \"three\nfour\"; let r = r#\"five\n\"#;\nx";
    let last = tokenize(source).pop().unwrap();
    assert_eq!(last.kind, TokenKind::Ident("x".to_string()));
    assert_eq!(last.line, 5);
}

#[test]
fn lexer_tells_lifetimes_from_character_literals() {
    let kinds: Vec<TokenKind> = tokenize("fn f<'a>(c: char) { '\\'' ; 'x' ; b'\"' ; 'a }")
        .into_iter()
        .map(|token| token.kind)
        .collect();
    let idents: Vec<&TokenKind> = kinds
        .iter()
        .filter(|kind| matches!(kind, TokenKind::Ident(_)))
        .collect();
    assert_eq!(
        idents,
        [
            &TokenKind::Ident("fn".to_string()),
            &TokenKind::Ident("f".to_string()),
            &TokenKind::Ident("c".to_string()),
            &TokenKind::Ident("char".to_string()),
        ]
    );
    assert_eq!(kinds.last(), Some(&TokenKind::Punct('}')));
}

#[test]
fn root_reexports_place_crate_level_names_in_their_module() {
    let modules = BTreeSet::from(["error".to_string(), "engine".to_string()]);
    let lib = scan(
        "pub mod error;\npub use error::Error;\npub use crate::engine::{Trainer as T, kinds::*};",
    );
    assert_eq!(
        root_reexports(&lib, &modules),
        BTreeMap::from([
            ("Error".to_string(), "error".to_string()),
            ("T".to_string(), "engine".to_string()),
        ])
    );
}

#[test]
fn layer_verdicts() {
    assert_eq!(judge_import("run", "engine"), Ok(()));
    assert_eq!(judge_import("engine", "engine"), Ok(()));
    assert_eq!(
        judge_import("run", "train"),
        Err("run (layer 3) imports train (layer 4)".to_string())
    );
    assert_eq!(
        judge_import("figures", "train"),
        Err(
            "figures (layer 4) imports train (layer 4; train and figures must not import each \
             other)"
                .to_string()
        )
    );
    assert_eq!(judge_import("report", "predict"), Ok(()));
    assert_eq!(
        judge_import("train", "figures"),
        Err(
            "train (layer 4) imports figures (layer 4; train and figures must not import each \
             other)"
                .to_string()
        )
    );
    assert!(judge_import("run", "device").is_err());
}

#[test]
fn module_paths_follow_the_file_layout() {
    assert_eq!(
        module_path_of("src/engine/cpu/conv.rs"),
        ["engine", "cpu", "conv"]
    );
    assert_eq!(module_path_of("src/engine/burn/mod.rs"), ["engine", "burn"]);
    assert_eq!(module_path_of("src/bench.rs"), ["bench"]);
    assert!(module_path_of("src/lib.rs").is_empty());
    assert!(module_path_of("src/main.rs").is_empty());
}

/// The files of each import circle in a tree of `(path, text)` files.
fn circles_in(sources: &[(&str, &str)]) -> Vec<BTreeSet<String>> {
    let tree = SourceTree::from_sources(
        sources
            .iter()
            .map(|&(path, text)| (path.to_string(), text.to_string())),
    );
    import_circles(tree.files.len(), &tree.file_edges())
        .into_iter()
        .map(|circle| {
            circle
                .iter()
                .map(|edge| tree.files[edge.from].path.clone())
                .collect()
        })
        .collect()
}

#[test]
fn circles_are_found_through_reexports_but_not_through_a_folders_own_mod_rs() {
    let geometry_alone = "use super::AError;\npub struct Geometry;";
    let geometry_using_schedule =
        "use super::AError;\nuse super::schedule::run;\npub struct Geometry;";
    let tree = |geometry| {
        [
            ("src/lib.rs", "pub mod a;\npub mod b;"),
            (
                "src/a/mod.rs",
                "mod geometry;\nmod schedule;\npub use geometry::Geometry;\nuse schedule::run;\n\
                 pub struct AError;\nfn f() { run(); }",
            ),
            ("src/a/geometry.rs", geometry),
            ("src/a/schedule.rs", "use crate::b::fast;\npub fn run() {}"),
            ("src/b.rs", "use crate::a::Geometry;\npub fn fast() {}"),
        ]
    };
    // `a/mod.rs` and its children name each other both ways: no circle, by the rule.
    assert!(circles_in(&tree(geometry_alone)).is_empty());
    // `b` imports `Geometry` through `a/mod.rs`'s re-export, from `a/geometry.rs`.
    assert_eq!(
        circles_in(&tree(geometry_using_schedule)),
        [BTreeSet::from([
            "src/a/geometry.rs".to_string(),
            "src/a/schedule.rs".to_string(),
            "src/b.rs".to_string(),
        ])]
    );
    let mutual = [
        ("src/lib.rs", "pub mod data;"),
        ("src/data/mod.rs", "pub mod facade;\npub mod label_map;"),
        (
            "src/data/facade.rs",
            "pub const COLORS: u8 = 0;\nfn f() { super::label_map::decode(); }",
        ),
        (
            "src/data/label_map.rs",
            "use super::facade::COLORS;\npub fn decode() {}",
        ),
    ];
    assert_eq!(circles_in(&mutual).len(), 1);
}

#[test]
fn terminal_writes_are_found_outside_tests_and_the_command_line() {
    let tree = SourceTree::from_sources([
        (
            "src/train/fit.rs".to_string(),
            "fn f() {\n    eprintln!(\"epoch {}\", 1);\n    let s = \"println!(x)\";\n}\n\
             #[cfg(test)]\nfn helper() { println!(\"a test's own\"); }\n\
             fn g() { std::print!(\"x\"); my::eprint!(); }\n\
             #[cfg(test)]\nmod tests {\n    fn t() { if true { dbg!(1); } }\n}\n\
             fn h() { dbg!(2); }"
                .to_string(),
        ),
        (
            "src/engine/cpu/conv/tests.rs".to_string(),
            "fn t() { eprintln!(\"skipped\"); }".to_string(),
        ),
        (
            "src/cli/print.rs".to_string(),
            "fn table() { println!(\"| a |\"); }".to_string(),
        ),
    ]);
    let lines: Vec<String> = terminal_writes(&tree)
        .iter()
        .map(|write| write.split(": ").next().unwrap_or("").trim().to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "src/train/fit.rs:2",
            "src/train/fit.rs:7",
            "src/train/fit.rs:12"
        ]
    );
}

#[test]
fn engine_internals_are_told_from_its_exports() {
    let tree = SourceTree::from_sources([
        (
            "src/lib.rs".to_string(),
            "pub mod engine;\npub mod bench;".to_string(),
        ),
        (
            "src/bench.rs".to_string(),
            "use crate::engine::{Compute, cpu::peak};\nuse crate::engine::measure_peak;\n\
             fn f() { crate::engine::burn::device(); }"
                .to_string(),
        ),
        (
            "src/main.rs".to_string(),
            "fn main() { convlab::engine::cpu::memory::keep(); }".to_string(),
        ),
        (
            "src/engine/mod.rs".to_string(),
            "pub mod cpu;\npub use cpu::peak::measure as measure_peak;".to_string(),
        ),
    ]);
    let lines: Vec<String> = engine_internal_paths(&tree)
        .iter()
        .map(|reach| reach.split(": ").next().unwrap_or("").trim().to_string())
        .collect();
    assert_eq!(lines, ["src/bench.rs:1", "src/bench.rs:3", "src/main.rs:1"]);
}
