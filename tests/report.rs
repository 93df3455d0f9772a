//! `convlab report` on small runs trained here: the page references only images that exist,
//! its tables have the expected rows, and headless Chromium renders it without errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::synthetic;
use common::{assert_bad_input, convlab};
use convlab::models::{ClassifierKind, SegmenterKind};

/// A folder holding a classification run `fashion`, a segmentation run `facade` (both trained
/// and evaluated on synthetic data), a photo folder and the report of all of them.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    stdout: String,
}

fn run_ok(args: &[&str], cwd: &Path) -> String {
    let out = convlab(args, cwd);
    assert!(
        out.status.success(),
        "convlab {args:?}: {}",
        common::stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        synthetic::write_fashion_dir(&root.join("fashion-data"), 600, 200).unwrap();
        run_ok(
            &[
                "fashion",
                "train",
                "--data",
                "fashion-data",
                "--skip-checksums",
                "--epochs",
                "2",
                "--out",
                "fashion",
            ],
            &root,
        );
        for extra in [["--tta", "flip-shift"], ["--precision", "bf16"]] {
            let mut args = vec![
                "fashion",
                "eval",
                "--run",
                "fashion",
                "--data",
                "fashion-data",
                "--skip-checksums",
            ];
            args.extend(extra);
            run_ok(&args, &root);
        }
        synthetic::write_facade_split(&root.join("facade-data/train"), 10, 1).unwrap();
        synthetic::write_facade_split(&root.join("facade-data/test_dev"), 2, 2).unwrap();
        run_ok(
            &[
                "facade",
                "train",
                "--model",
                "unet",
                "--data",
                "facade-data",
                "--epochs",
                "1",
                "--batch-size",
                "5",
                "--out",
                "facade",
            ],
            &root,
        );
        std::fs::create_dir(root.join("photos")).unwrap();
        image::RgbaImage::from_pixel(300, 180, image::Rgba([120, 90, 60, 255]))
            .save(root.join("photos/street.png"))
            .unwrap();
        let stdout = run_ok(
            &[
                "report", "fashion", "fashion", "facade", "--photos", "photos", "--out", "report",
            ],
            &root,
        );
        Fixture {
            _tmp: tmp,
            root,
            stdout,
        }
    })
}

fn page(f: &Fixture) -> String {
    std::fs::read_to_string(f.root.join("report/index.html")).unwrap()
}

/// Every `src="..."` of the page.
fn image_sources(html: &str) -> Vec<String> {
    html.split("src=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// Each table's caption and its number of body rows.
fn tables(html: &str) -> Vec<(String, usize)> {
    html.split("<table>")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</table>").unwrap()];
            let caption = t
                .split("<caption>")
                .nth(1)
                .map(|c| c[..c.find("</caption>").unwrap()].to_string())
                .unwrap_or_default();
            let body = t.split("<tbody>").nth(1).unwrap_or_default();
            (caption, body.matches("<tr").count())
        })
        .collect()
}

fn rows_of(tables: &[(String, usize)], caption_start: &str) -> Vec<usize> {
    tables
        .iter()
        .filter(|(c, _)| c.starts_with(caption_start))
        .map(|(_, n)| *n)
        .collect()
}

#[test]
fn every_image_the_report_references_exists_and_decodes() {
    let f = fixture();
    let html = page(f);
    let sources = image_sources(&html);
    // Per classification run: curves, filters, confusion, 10 classes x 2 example strips (a
    // strip is left out where a class has no such example); segmentation: curves, ap, legend,
    // predictions, confusion, and an overlay and a colour mask per photo.
    assert!(sources.len() >= 2 * 3 + 5 + 2, "{sources:?}");
    for src in &sources {
        assert!(!src.starts_with('/') && !src.contains("://"), "{src}");
        let path = f.root.join("report").join(src);
        let img = image::open(&path).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(img.width() > 0 && img.height() > 0, "{src}");
    }
    assert!(!html.contains("class=\"missing\""), "a figure is missing");
    for alt in html.split("<img ").skip(1) {
        let alt = alt
            .split("alt=\"")
            .nth(1)
            .expect("every image has alt text");
        assert!(alt.len() > 20, "alt text too short: {alt}");
    }
}

#[test]
fn every_table_has_the_expected_rows() {
    let f = fixture();
    let html = page(f);
    let t = tables(&html);
    let classes = ClassifierKind::Base.spec();
    let base_layers = classes.summary().unwrap().len();
    let unet_layers = SegmenterKind::Unet.spec().summary().unwrap().len();
    // Two entries of the same classification run: compared, two rows; one segmentation run:
    // no comparison.
    assert_eq!(
        rows_of(&t, "Classification runs compared"),
        vec![2],
        "{t:?}"
    );
    assert!(rows_of(&t, "Segmentation runs compared").is_empty());
    assert_eq!(rows_of(&t, "Hyper-parameters"), vec![9, 9, 9]);
    let mut arch = rows_of(&t, "Architecture");
    arch.sort();
    assert_eq!(arch, vec![base_layers, base_layers, unet_layers]);
    // Ten classes and the total; the hardest class marked in words as well as in bold.
    assert_eq!(rows_of(&t, "Per-class accuracy"), vec![11, 11]);
    assert_eq!(html.matches("(hardest)").count(), 2);
    assert_eq!(
        html.matches("<tr class=\"highlight\"><td>").count(),
        2 + 1 + 1
    );
    assert_eq!(
        rows_of(&t, "Correct and incorrect (false positive)"),
        vec![10, 10]
    );
    assert_eq!(rows_of(&t, "Per-class AP"), vec![5 + 1]);
    assert_eq!(rows_of(&t, "Predictions on your photos"), vec![1]);
    // Per-epoch logs: 2 epochs per classification run, 1 for the segmentation run.
    assert_eq!(rows_of(&t, "Per-epoch log"), vec![2, 2, 1]);
    // The terminal summary names each run and the page.
    assert_eq!(
        f.stdout
            .lines()
            .filter(|l| l.starts_with("fashion"))
            .count(),
        2
    );
    assert!(f.stdout.contains("test mAP"), "{}", f.stdout);
    assert!(f.stdout.contains("report/index.html"), "{}", f.stdout);
}

/// The headline lists each other evaluation `eval` wrote, with its figures; a run without any
/// lists none.
#[test]
fn the_headline_lists_the_evaluations_beside_the_plain_one() {
    let f = fixture();
    let html = page(f);
    for (options, file) in [
        ("--tta flip-shift", "metrics_tta_flip-shift.json"),
        ("--precision bf16", "metrics_bf16.json"),
    ] {
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.root.join("fashion").join(file)).unwrap())
                .unwrap();
        let said = format!(
            "With <code>eval {options}</code>: test accuracy {:.2}% · validation {:.2}%",
            100.0 * metrics["test"]["accuracy"].as_f64().unwrap(),
            100.0 * metrics["val"]["accuracy"].as_f64().unwrap()
        );
        assert!(html.contains(&said), "no '{said}' in the report");
    }
    assert_eq!(
        html.matches("With <code>eval ").count(),
        2 * 2,
        "the fashion run is listed twice"
    );
}

#[test]
fn a_folder_that_is_not_an_evaluated_run_is_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    assert_bad_input(
        &convlab(&["report", "nowhere", "--out", "r"], tmp.path()),
        "nowhere/config.json: not found",
    );
    let unevaluated = tmp.path().join("unevaluated");
    std::fs::create_dir(&unevaluated).unwrap();
    std::fs::copy(
        f.root.join("fashion/config.json"),
        unevaluated.join("config.json"),
    )
    .unwrap();
    let out = convlab(&["report", "unevaluated", "--out", "r"], tmp.path());
    assert_bad_input(&out, "unevaluated/metrics.json: not found");
    assert!(common::stderr(&out).contains("convlab fashion eval --run unevaluated"));
    assert!(
        !tmp.path().join("r").exists(),
        "nothing is written for bad input"
    );
}

/// Chromium's binary: `$CONVLAB_CHROMIUM`, else the first of the usual names on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CONVLAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `extra` arguments; returns its stdout.
fn headless(chromium: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    let stdout = std::thread::spawn({
        let mut out = child.stdout.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut out, &mut s).unwrap();
            s
        }
    });
    let stderr = std::thread::spawn({
        let mut err = child.stderr.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut err, &mut s).unwrap();
            s
        }
    });
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "chromium failed: {err}");
    out
}

/// Loaded first in a copy of the page: records console errors, script errors and resources
/// that failed to load, then after `load` writes what it saw, and each image's decoded width,
/// into the DOM for `--dump-dom`.
const PROBE: &str = r#"<script>
window.__problems = [];
(function () {
  var original = console.error;
  console.error = function () {
    window.__problems.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    original.apply(console, arguments);
  };
  window.addEventListener('error', function (e) {
    var t = e.target;
    window.__problems.push(t && t.src ? 'failed to load ' + t.src : 'error: ' + e.message);
  }, true);
  window.addEventListener('load', function () {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
      .map(function (i) { return i.getAttribute('src'); });
    var pre = document.createElement('pre');
    pre.id = 'probe';
    pre.textContent = JSON.stringify({ images: images.length, broken: broken, problems: window.__problems });
    document.body.appendChild(pre);
  });
})();
</script>"#;

#[test]
fn the_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CONVLAB_REQUIRE_BROWSER").is_none(),
            "CONVLAB_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!(
            "SKIPPED: no chromium on the PATH (install Debian's `chromium` to run this test)"
        );
        return;
    };
    let f = fixture();
    let report = f.root.join("report");
    let html = page(f);
    let probed = html.replacen("<head>", &format!("<head>\n{PROBE}"), 1);
    std::fs::write(report.join("probe.html"), probed).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = |file: &str| format!("file://{}", report.join(file).display());

    let dom = headless(
        &chromium,
        profile.path(),
        &["--dump-dom".into()],
        &url("probe.html"),
    );
    let json = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("the probe did not run; DOM:\n{dom}"))
        .replace("&quot;", "\"");
    let seen: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        seen["images"].as_u64().unwrap() as usize,
        image_sources(&html).len(),
        "{seen}"
    );
    assert_eq!(
        seen["broken"],
        serde_json::json!([]),
        "images that did not decode"
    );
    assert_eq!(
        seen["problems"],
        serde_json::json!([]),
        "console or load errors"
    );

    // Screenshots of the page as a person sees it, wide and narrow, kept for looking at.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, size) in [("wide.png", "1280,5000"), ("narrow.png", "420,3000")] {
        let shot = shots.join(name);
        let _ = std::fs::remove_file(&shot);
        headless(
            &chromium,
            profile.path(),
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={size}"),
            ],
            &url("index.html"),
        );
        let img = image::open(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        let width: u32 = size.split(',').next().unwrap().parse().unwrap();
        assert_eq!(img.width(), width, "{name}");
        eprintln!("screenshot: {}", shot.display());
    }
}
