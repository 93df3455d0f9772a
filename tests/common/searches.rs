//! What the search tests share: a search's command line on the synthetic Fashion-MNIST in
//! `synth/`, and what its folder holds (the leaderboard, a trial's result per rung).

use std::path::Path;

/// `fashion search` on the synthetic set in `synth/` into `out`, then `extra`.
pub fn fashion_search<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "fashion",
        "search",
        "--data",
        "synth",
        "--skip-checksums",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// The leaderboard's lines without the columns that differ between two runs of one search
/// (seconds, run folder, node): rank, trial, lr, weight decay, batch, score, best epoch, status,
/// rung, epochs.
pub fn ranking(cwd: &Path, dir: &str) -> Vec<String> {
    let csv = std::fs::read_to_string(cwd.join(dir).join("leaderboard.csv")).unwrap();
    csv.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            [&f[..7], &f[10..]].concat().join(",")
        })
        .collect()
}

/// Trial `trial`'s result file in `rung` of the search in `dir`, when it has one.
pub fn result(cwd: &Path, dir: &str, trial: usize, rung: usize) -> Option<serde_json::Value> {
    let path = cwd.join(format!("{dir}/trial-{trial:02}/rung-{rung}.json"));
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}
