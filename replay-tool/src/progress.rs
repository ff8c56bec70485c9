//! Progress bars: on stderr, only when stderr is a terminal, so stdout carries
//! nothing but data and a piped or logged run stays quiet. Numbers are
//! human-formatted (`1,234,567/2,000,000 events (297,611 events/s, 3s left)`).

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::time::Duration;

use backchannel_eventlog::CopyProgress;
use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Updating the bar for every event would cost more than decoding it.
const STEP: u64 = 4096;

pub struct Progress {
    bar: ProgressBar,
    label: String,
    /// What each pass of the command reads the log for, in order (the
    /// report's three); unnamed passes are numbered.
    pass_labels: Vec<String>,
    passes: Cell<u32>,
    last: Cell<u64>,
    step: u64,
    /// For tests: every (message, position) the bar was given.
    recorded: Option<RefCell<Vec<(String, u64)>>>,
}

fn events_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:40}] {human_pos}/{human_len} events ({rate}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "rate",
        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{} events/s", HumanCount(state.per_sec().round() as u64));
        },
    )
    .progress_chars("=> ")
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Progress {
    pub fn new(label: &str, quiet: bool) -> Self {
        Self::with_passes(label, &[], quiet)
    }

    /// A bar whose passes say what they are for: `label: pass_labels[i]`.
    pub fn with_passes(label: &str, pass_labels: &[&str], quiet: bool) -> Self {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::build(label, pass_labels, target, STEP, None)
    }

    /// A hidden bar that records every update, for tests.
    pub fn recording(label: &str, pass_labels: &[&str]) -> Self {
        Self::build(
            label,
            pass_labels,
            ProgressDrawTarget::hidden(),
            1,
            Some(RefCell::new(Vec::new())),
        )
    }

    fn build(
        label: &str,
        pass_labels: &[&str],
        target: ProgressDrawTarget,
        step: u64,
        recorded: Option<RefCell<Vec<(String, u64)>>>,
    ) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(events_style());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            label: label.to_owned(),
            pass_labels: pass_labels.iter().map(|l| (*l).to_owned()).collect(),
            passes: Cell::new(0),
            last: Cell::new(0),
            step,
            recorded,
        }
    }

    /// Every (message, position) given to the bar so far (tests only; empty
    /// unless [`Progress::recording`]).
    pub fn updates(&self) -> Vec<(String, u64)> {
        self.recorded
            .as_ref()
            .map(|r| r.borrow().clone())
            .unwrap_or_default()
    }

    fn set(&self, position: u64) {
        self.bar.set_position(position);
        if let Some(recorded) = &self.recorded {
            recorded
                .borrow_mut()
                .push((self.bar.message().to_string(), position));
        }
    }

    pub fn start_pass(&self, len: u64) {
        let pass = self.passes.get() + 1;
        self.passes.set(pass);
        self.bar.set_position(0);
        self.bar.set_style(events_style());
        self.bar.set_length(len);
        self.bar.reset_eta();
        self.last.set(0);
        let named = usize::try_from(pass - 1)
            .ok()
            .and_then(|i| self.pass_labels.get(i));
        self.bar.set_message(match named {
            Some(name) => format!(
                "{} (pass {pass}/{}: {name})",
                self.label,
                self.pass_labels.len()
            ),
            None if pass > 1 => format!("{} (pass {pass})", self.label),
            None => self.label.clone(),
        });
        self.set(0);
    }

    pub fn at(&self, position: u64) {
        if position >= self.last.get() + self.step {
            self.last.set(position);
            self.set(position);
        }
    }

    pub fn end_pass(&self) {
        self.set(self.bar.length().unwrap_or(0));
    }

    /// Shows how far the copy of a `--data-dir` store is.
    pub fn copying(&self, step: CopyProgress) {
        match step {
            CopyProgress::Total(bytes) => {
                self.bar.set_style(bytes_style());
                self.bar.set_length(bytes);
                self.bar.reset_eta();
                self.bar
                    .set_message("copying the store (it is read through a copy)");
                self.set(0);
            }
            CopyProgress::Copied(bytes) => self.set(bytes),
            CopyProgress::Opening => {
                self.bar.set_style(spinner_style());
                self.bar
                    .set_message("opening the copy (indexing every record)");
                self.set(0);
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
