//! Progress bars: on stderr, only when stderr is a terminal, so stdout carries
//! nothing but data and a piped or logged run stays quiet.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: ProgressBar,
    label: String,
    passes: Cell<u32>,
    /// Updating the bar for every event would cost more than decoding it.
    last: Cell<u64>,
}

impl Progress {
    pub fn new(label: &str, quiet: bool) -> Self {
        let target = if !quiet && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            bar,
            label: label.to_owned(),
            passes: Cell::new(0),
            last: Cell::new(0),
        }
    }

    pub fn start_pass(&self, len: u64) {
        let pass = self.passes.get() + 1;
        self.passes.set(pass);
        self.bar.set_length(len);
        self.bar.set_position(0);
        self.bar.reset_eta();
        self.last.set(0);
        self.bar.set_message(if pass > 1 {
            format!("{} (pass {pass})", self.label)
        } else {
            self.label.clone()
        });
    }

    pub fn at(&self, position: u64) {
        if position >= self.last.get() + 4096 {
            self.last.set(position);
            self.bar.set_position(position);
        }
    }

    pub fn end_pass(&self) {
        self.bar.set_position(self.bar.length().unwrap_or(0));
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
