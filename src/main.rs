//! Thin binary: parse the command line, set up logging, call the library, map the result
//! to an exit code (0 ok, 1 privacy check failed, 2 error).

mod cli;

use clap::Parser;

use anonymizer::{ExitCode, demo, generate, run};
use cli::{Cli, Command, LogFormat};

fn main() {
    // A panic is a bug; its message may quote what the code was working on, so quoted
    // parts are blanked like every other error's, and the hint says what to do.
    std::panic::set_hook(Box::new(|info| {
        // A reader's panic the library turns into an error of its own (a damaged file).
        if anonymizer::error::panic_is_contained()
            && info
                .location()
                .and_then(|l| anonymizer::error::reader_crate_path(l.file()))
                .is_some()
        {
            return;
        }
        let payload = anonymizer::error::payload_text(info.payload());
        let at = info.location().map(|l| (l.file(), l.line()));
        eprintln!("{}", anonymizer::error::panic_report(at, &payload));
    }));
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.quiet);
    let json_logs = matches!(cli.log_format, LogFormat::Json);
    let code = match execute(cli.command, json_logs) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            let code = e.exit_code();
            // Never the key, nor a token, whatever the message quotes.
            let message = anonymizer::error::blank_hex_runs(&e.to_string());
            if json_logs {
                json_line("ERROR", "error", "error", &message, Some(code as i32));
            } else {
                eprintln!("error: {message}");
            }
            code
        }
    };
    std::process::exit(code as i32);
}

fn execute(command: Command, json_logs: bool) -> Result<(), anonymizer::Error> {
    match command {
        Command::Generate {
            out,
            customers,
            seed,
            start,
            months,
            files,
        } => {
            let mut o = generate::GenerateOptions::new(out, customers);
            o.seed = seed;
            o.start = start;
            o.months = months;
            if let Some(f) = files {
                o.files = f;
            }
            let s = generate::generate(&o)?;
            println!(
                "wrote {} customers and {} transactions to {} ({} + {} files)",
                s.customers,
                s.transactions,
                o.out.display(),
                s.customer_files.len(),
                s.transaction_files.len()
            );
        }
        Command::Run {
            config,
            as_of,
            out,
            threads,
            requests,
            spill_dir,
            new_ledger,
        } => {
            // Every stage's parallel work on `threads` threads, not only the transform's.
            run::size_worker_pool(run::threads_for(&config, threads))?;
            let s = run::run(&run::RunOptions {
                config,
                as_of,
                out,
                threads,
                requests,
                spill_dir,
                new_ledger,
                ..Default::default()
            })?;
            print!("{}", s.report());
            for line in &s.attention {
                if json_logs {
                    // One JSON object per line, like the log lines on stderr (and shown
                    // with --quiet too, as the plain line is).
                    json_line("WARN", "attention", "attention", line, None);
                } else {
                    eprintln!("attention: {line}");
                }
            }
        }
        Command::Verify {
            dir,
            config,
            k,
            threads,
            spill_dir,
        } => {
            let threads = match &config {
                Some(c) => run::threads_for(c, threads),
                None => run::pick_threads(threads, None),
            };
            run::size_worker_pool(threads)?;
            let report = anonymizer::verify::run_verify(
                dir.as_deref(),
                config.as_deref(),
                k,
                threads,
                spill_dir.as_deref(),
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("the report serializes")
            );
            if json_logs {
                let level = if report.passed { "INFO" } else { "ERROR" };
                json_line(level, "privacy checks", "summary", &report.summary(), None);
            } else {
                eprint!("{}", report.summary());
            }
            if !report.passed {
                return Err(anonymizer::Error::PrivacyCheckFailed(
                    "privacy checks failed (see the report above)".into(),
                ));
            }
        }
        Command::Erase(args) => match args.into_action() {
            cli::EraseAction::Add(options) => {
                let (id, file) = anonymizer::erasure::append_request(&options)?;
                // A run treats a request received after its as-of date (by default the
                // export's last event) as not yet due, and keeps it for a later run.
                println!(
                    "request {id} added to {}; the first run whose as-of date is {} or later \
                     honours it (a run's as-of date is --as-of, else the export's last event)",
                    file.display(),
                    options.received
                );
            }
            cli::EraseAction::Prune(config) => {
                let p = anonymizer::erasure::prune_requests(&config)?;
                println!("{}", p.summary());
            }
        },
        Command::Query(args) => {
            // Streamed to stdout as the query produces rows; a reader that goes away
            // (`| head`: EPIPE, os error 32) ends it quietly.
            let stdout = std::io::BufWriter::new(std::io::stdout());
            match anonymizer::query::execute_to(&args.into_options(), stdout) {
                Err(e) if e.to_string().contains("(os error 32)") => {}
                other => other?,
            }
        }
        Command::BenchCopy {
            config,
            out,
            threads,
            zstd_level,
            row_group_rows,
            no_dictionary,
        } => {
            let d = run::ParquetSettings::default();
            let custom = run::ParquetSettings {
                zstd_level: zstd_level.unwrap_or(d.zstd_level),
                row_group_rows: row_group_rows.unwrap_or(d.row_group_rows),
                dictionary: !no_dictionary,
            };
            run::size_worker_pool(run::threads_for(&config, threads))?;
            let rows = run::bench_copy(&config, &out, threads, custom)?;
            println!("copied {rows} rows to {}", out.display());
        }
        Command::Risk(args) => {
            let json = args.json();
            let o = args.into_options().map_err(anonymizer::Error::Usage)?;
            let report = anonymizer::risk::risk(&o)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("the report serializes")
                );
            } else {
                print!("{}", report.table());
            }
        }
        Command::Demo { dir, customers } => {
            let s = demo::demo(&demo::DemoOptions {
                dir,
                customers,
                ..Default::default()
            })?;
            print!("{}", s.report());
        }
    }
    Ok(())
}

/// One line on stderr shaped like the JSON log lines (`--log-format json`): `fields`
/// holds `message` and `key: value` (and `exit_code` when given).
fn json_line(level: &str, message: &str, key: &str, value: &str, exit_code: Option<i32>) {
    let mut fields = serde_json::Map::new();
    fields.insert("message".into(), message.into());
    fields.insert(key.into(), value.into());
    if let Some(c) = exit_code {
        fields.insert("exit_code".into(), c.into());
    }
    eprintln!(
        "{}",
        serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": level,
            "fields": fields,
            "target": "anonymizer",
        })
    );
}

fn init_logging(format: LogFormat, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if quiet {
        "error"
    } else {
        "warn,anonymizer=info"
    };
    // A bare level applies to anonymizer's own logs only (`cli::log_filter`).
    let filter = match std::env::var("ANONYMIZER_LOG") {
        Ok(v) => {
            EnvFilter::try_new(cli::log_filter(&v)).unwrap_or_else(|_| EnvFilter::new(default))
        }
        Err(_) => EnvFilter::new(default),
    };
    use std::io::IsTerminal;
    let human = matches!(format, LogFormat::Human);
    if anonymizer::progress::wanted(
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
        human,
        quiet,
    ) {
        anonymizer::progress::install();
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| anonymizer::progress::Writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.without_time().init(),
    }
}
