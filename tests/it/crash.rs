//! Crash trials: `anonymizer run` killed with SIGKILL at random moments. Each time,
//! `OUT/current` must still be a complete run (the previous one, or a newer one when the
//! kill came after the swap) that `anonymizer query` reads, and the next run must succeed:
//! the lock is an flock the kernel releases with the killed process, and the killed run's
//! staging folder is removed by the next run.
//!
//! CI runs a few trials; `ANONYMIZER_CRASH_TRIALS=50` (see `tests/crash_trials.sh`) runs
//! the full set.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

fn trials() -> usize {
    std::env::var("ANONYMIZER_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

fn current_run(out: &Path) -> String {
    std::fs::read_link(out.join("current"))
        .expect("OUT/current is a symlink")
        .file_name()
        .expect("current points at runs/<id>")
        .to_string_lossy()
        .into_owned()
}

fn run_cli(config: &Path) -> std::process::Output {
    cli(
        &["-q", "run", "--config", config.to_str().unwrap()],
        Some(KEY_HEX),
    )
}

/// The published run is complete and readable.
fn check_readable(config: &Path, out: &Path, trial: usize) {
    let id = current_run(out);
    let run = out.join("runs").join(&id);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("_manifest.json"))
            .unwrap_or_else(|e| panic!("trial {trial}: current -> {id} has no manifest: {e}")),
    )
    .unwrap();
    for (table, report) in manifest["tables"].as_object().unwrap() {
        for f in report["files"].as_array().unwrap() {
            let path = run.join(f["path"].as_str().unwrap());
            assert!(
                path.exists(),
                "trial {trial}: {table}: {} missing",
                path.display()
            );
        }
    }
    let q = cli(
        &[
            "query",
            "--config",
            config.to_str().unwrap(),
            "--sql",
            "SELECT COUNT(*) AS n FROM transactions",
            "--format",
            "csv",
        ],
        None,
    );
    assert!(
        q.status.success(),
        "trial {trial}: query failed: {}",
        String::from_utf8_lossy(&q.stderr)
    );
}

#[test]
fn killed_runs_leave_the_last_complete_run_published() {
    let dir = fixture_copy();
    let config = dir.path().join("anonymizer.toml");
    let out = dir.path().join("out");
    let t = Instant::now();
    let first = run_cli(&config);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let full = t.elapsed().as_millis().max(1) as u64;
    let mut previous = current_run(&out);
    check_readable(&config, &out, 0);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let mut killed = 0;
    for trial in 1..=trials() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_anonymizer"))
            .args(["-q", "run", "--config", config.to_str().unwrap()])
            .env("ANONYMIZER_KEY", KEY_HEX)
            .env_remove("ANONYMIZER_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from the start to a little past a whole run.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..full * 11 / 10)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let now = current_run(&out);
        if now != previous {
            // The kill came after the swap: the new run is complete.
            assert!(now > previous, "trial {trial}: current went back to {now}");
            previous = now;
        }
        check_readable(&config, &out, trial);
    }
    assert!(
        killed * 2 >= trials(),
        "only {killed} of {} runs were killed before they finished",
        trials()
    );

    // The next run takes the lock, clears the killed runs' staging folders and publishes.
    let next = run_cli(&config);
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert_ne!(current_run(&out), previous);
    check_readable(&config, &out, trials() + 1);
    let leftovers: Vec<String> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
