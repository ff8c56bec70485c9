//! `bench`: throughput and peak memory of verify, rebuild and report beside
//! the raw scan + decode of the same log. Each part runs in its own child
//! process so its peak memory (VmHWM) is its own. Reported, not asserted.

use indicatif::HumanCount;
use std::io;
use std::ops::ControlFlow;
use std::process::Command as Child;
use std::time::Instant;

use backchannel_eventlog::RecordedAt;
use backchannel_projections::EventSource;
use backchannel_projections::report::{ReportFormat, ReportRequest, write_report};
use serde::{Deserialize, Serialize};

use crate::cli::{BenchArgs, BenchPart};
use crate::commands::{open_source, parse_time, rebuild, source_failure, verify};
use crate::failure::{Failure, Kind};
use crate::progress::Progress;

#[derive(Serialize, Deserialize)]
struct Measurement {
    part: String,
    events: u64,
    seconds: f64,
    events_per_second: f64,
    /// Peak resident memory of the process (VmHWM), KiB.
    vm_hwm_kib: u64,
    /// Resident memory after opening the source, before the part ran, KiB.
    vm_rss_at_start_kib: u64,
}

pub fn run(args: &BenchArgs, quiet: bool) -> Result<(), Failure> {
    match args.only {
        Some(part) => {
            let measurement = measure(args, part)?;
            println!(
                "{}",
                serde_json::to_string(&measurement).unwrap_or_default()
            );
            Ok(())
        }
        None => run_all(args, quiet),
    }
}

fn measure(args: &BenchArgs, part: BenchPart) -> Result<Measurement, Failure> {
    let source = open_source(&args.source, true)?;
    let progress = Progress::new("bench", true);
    let rss_at_start = proc_status("VmRSS:");
    let started = Instant::now();
    let events = match part {
        BenchPart::Scan => {
            let mut events = 0u64;
            source
                .replay(1, source.head(), &mut |_| {
                    events += 1;
                    ControlFlow::Continue(())
                })
                .map_err(source_failure)?;
            events
        }
        BenchPart::Verify => verify::check(&source, &progress)?.events,
        BenchPart::Rebuild => rebuild::rebuild(&source, &progress)?.position(),
        BenchPart::Report => {
            let from = match &args.report_from {
                Some(at) => parse_time("report-from", at)?,
                None => RecordedAt::from_micros(0),
            };
            let to = match &args.report_to {
                Some(at) => parse_time("report-to", at)?,
                None => RecordedAt::from_micros(i64::MAX),
            };
            let request = ReportRequest {
                from,
                to,
                group: None,
                company: None,
                viewer: None,
                format: ReportFormat::Csv,
            };
            let summary = write_report(&source, &request, io::sink())
                .map_err(|err| Failure::new(Kind::Broken, err.to_string()))?;
            eprintln!(
                "report: {} conversations, {} rows",
                HumanCount(summary.conversations),
                HumanCount(summary.rows)
            );
            source.head()
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Measurement {
        part: format!("{part:?}").to_lowercase(),
        events,
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        vm_hwm_kib: proc_status("VmHWM:"),
        vm_rss_at_start_kib: rss_at_start,
    })
}

/// A `kB` field of /proc/self/status (0 where there is none).
fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

fn run_all(args: &BenchArgs, quiet: bool) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|err| Failure::new(Kind::Io, format!("cannot find my own binary: {err}")))?;
    let mut source_args: Vec<String> = Vec::new();
    if let Some(dir) = &args.source.source.data_dir {
        source_args.extend(["--data-dir".to_owned(), dir.display().to_string()]);
    }
    if let Some(file) = &args.source.source.file {
        source_args.extend(["--file".to_owned(), file.display().to_string()]);
    }
    if let Some(dir) = &args.source.scratch_dir {
        source_args.extend(["--scratch-dir".to_owned(), dir.display().to_string()]);
    }
    if args.source.source.server.is_some() {
        return Err(Failure::new(
            Kind::Usage,
            "bench reads a store or a file; export the server's log first (`export --server`)",
        ));
    }
    for (flag, value) in [
        ("--report-from", &args.report_from),
        ("--report-to", &args.report_to),
    ] {
        if let Some(value) = value {
            source_args.extend([flag.to_owned(), value.clone()]);
        }
    }
    let mut results = Vec::new();
    for part in ["scan", "verify", "rebuild", "report"] {
        if !quiet {
            eprintln!("bench: {part} ...");
        }
        let output = Child::new(&exe)
            .arg("bench")
            .args(&source_args)
            .args(["--only", part])
            .output()
            .map_err(|err| Failure::new(Kind::Io, format!("running the {part} bench: {err}")))?;
        if !quiet {
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
        }
        if !output.status.success() {
            return Err(Failure::new(
                Kind::Broken,
                format!(
                    "the {part} bench failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            ));
        }
        let measurement: Measurement = serde_json::from_slice(&output.stdout).map_err(|err| {
            Failure::new(
                Kind::Io,
                format!("the {part} bench printed no measurement: {err}"),
            )
        })?;
        results.push(measurement);
    }
    let scan_rate = results[0].events_per_second;
    println!(
        "| part | events | seconds | events/s | vs scan+decode | peak RSS (VmHWM) | RSS after open |"
    );
    println!("|---|---|---|---|---|---|---|");
    for m in &results {
        println!(
            "| {} | {} | {:.3} | {} | {:.0}% | {:.1} MiB | {:.1} MiB |",
            m.part,
            HumanCount(m.events),
            m.seconds,
            HumanCount(m.events_per_second.round() as u64),
            100.0 * m.events_per_second / scan_rate.max(1e-9),
            m.vm_hwm_kib as f64 / 1024.0,
            m.vm_rss_at_start_kib as f64 / 1024.0,
        );
    }
    Ok(())
}
