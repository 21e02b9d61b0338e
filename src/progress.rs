//! Progress bars on the long stages of a run, for a person watching a terminal.
//!
//! Like logging, progress is a concern of the whole process: `main` calls [`install`]
//! only when stdout and stderr are both terminals, the log format is human and
//! `--quiet` is off. Otherwise (a scheduler, a pipe, a test, JSON logs) every call here
//! does nothing, so nothing but log lines ever reaches a log file. Bars are drawn on
//! stderr; log lines go through [`Writer`], which lifts the bars while a line is
//! printed so that the two never tear each other.
//!
//! A bar shows counts and stage names only, never a value from the data.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Whether a run started this way should draw progress bars.
pub fn wanted(stdout_terminal: bool, stderr_terminal: bool, human_logs: bool, quiet: bool) -> bool {
    stdout_terminal && stderr_terminal && human_logs && !quiet
}

/// Turns progress bars on for the rest of the process.
pub fn install() {
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
}

/// Whether [`install`] was called.
pub fn active() -> bool {
    BARS.get().is_some()
}

/// One stage's bar (a count of `total` units) or spinner (no total); cleared when the
/// handle [`stage`] returned is dropped. Without [`install`], a no-op.
pub struct Stage {
    bar: Option<ProgressBar>,
    owner: bool,
}

/// Starts a stage: `name` is shown before the bar, `unit` after the counts.
pub fn stage(name: &str, total: Option<u64>, unit: &str) -> Stage {
    let Some(bars) = BARS.get() else {
        return Stage {
            bar: None,
            owner: false,
        };
    };
    let pb = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>12.bold}} [{{bar:32}}] {{human_pos}}/{{human_len}} {unit} ({{rate}}/s, {{eta}} left)"
            ))
            .expect("a valid template")
            .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", indicatif::HumanCount(s.per_sec() as u64));
            })
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>12.bold} {spinner} {elapsed}")
                .expect("a valid template"),
        ),
    };
    let pb = bars.add(pb.with_prefix(name.to_string()));
    pb.enable_steady_tick(Duration::from_millis(125));
    Stage {
        bar: Some(pb),
        owner: true,
    }
}

impl Stage {
    /// Adds `n` units done.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.bar {
            pb.inc(n);
        }
    }

    /// A handle for the stage's other tasks: it counts, but does not clear the bar.
    pub fn handle(&self) -> Stage {
        Stage {
            bar: self.bar.clone(),
            owner: false,
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.owner
            && let Some(pb) = &self.bar
        {
            pb.finish_and_clear();
        }
    }
}

/// Runs `f` with the bars lifted off the terminal (for printing a line).
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match BARS.get() {
        Some(bars) => bars.suspend(f),
        None => f(),
    }
}

/// stderr for log lines: lifts the bars while writing.
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_only_for_a_person_at_a_terminal() {
        assert!(super::wanted(true, true, true, false));
        assert!(!super::wanted(false, true, true, false), "stdout piped");
        assert!(!super::wanted(true, false, true, false), "stderr piped");
        assert!(!super::wanted(true, true, false, false), "JSON logs");
        assert!(!super::wanted(true, true, true, true), "--quiet");
    }

    #[test]
    fn without_install_stages_draw_nothing() {
        // Unit tests never call install(): every call is a no-op.
        assert!(!super::active());
        let s = super::stage("transform", Some(10), "rows");
        s.handle().inc(5);
        assert!(s.bar.is_none());
    }
}
