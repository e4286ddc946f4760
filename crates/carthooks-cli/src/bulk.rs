//! `carthooks export` and `carthooks import`, on the SDK's bulk engine, with
//! a progress bar on stderr (hidden when stderr is not a terminal, or with
//! `--quiet`) and a clean stop on Ctrl-C that says how to resume.
//!
//! **Export** writes NDJSON (an item a line, as the API gives it) or CSV (id,
//! title, then the fields of the first 100 items; an item with a field
//! outside them stops the export rather than lose it). Next to the file,
//! `FILE.export-checkpoint` records, every second and at a stop, the items
//! written and the file's length at that point; `--resume` cuts the file to
//! that length and asks the API from there, so a resumed file holds each item
//! once. It is removed when the export ends.
//!
//! **Import** reads the whole file first (a malformed row stops it before
//! anything is sent, with its line), then hands the rows to the SDK's import
//! with `FILE.import-checkpoint`: every row is recorded before it is sent and
//! when it is settled. Ctrl-C stops starting rows, lets the ones in flight
//! finish, and says to run again with `--resume`, which skips the rows done;
//! with `--upsert-by`, a row whose outcome is unknown is looked up rather than
//! created twice. Rows that failed or whose outcome is unknown are written to
//! the report (`FILE.problems.ndjson`); the checkpoint stays until a run has
//! none, so a resumed run sends exactly what is left.

use std::io::{BufWriter, IsTerminal as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carthooks::bulk::{ExportCheckpoint, FileCheckpoint, ImportStop, STOPPED_ON_REQUEST};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::args::{ExportArgs, Format, ImportArgs};
use crate::config::write_private;
use crate::ctx::Ctx;
use crate::error::{CliError, usage};
use crate::output::{finish, tabulate};

/// The progress bar: drawn only on a terminal and without `--quiet`.
fn progress_bar(ctx: &Ctx, total: Option<u64>, unit: &str) -> ProgressBar {
    if ctx.global.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr_with_hz(10));
    let template = if total.is_some() {
        format!("{{bar:32}} {{human_pos}}/{{human_len}} {unit}  {{rate}}  ETA {{eta}}")
    } else {
        format!("{{spinner}} {{human_pos}} {unit}  {{rate}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(
            style
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}/s", state.per_sec());
                    },
                )
                .progress_chars("█▉▊▋▌▍▎▏ "),
        );
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn rate(n: u64, elapsed: Duration) -> String {
    let per_sec = n as f64 / elapsed.as_secs_f64().max(1e-3);
    format!("{per_sec:.0}/s")
}

/// `FILE.export-checkpoint`.
#[derive(Debug, Serialize, Deserialize)]
struct ExportState {
    /// The API offset after the last item written.
    offset: u64,
    /// The file's length after that item.
    bytes: u64,
    /// The app, collection and query it belongs to.
    what: String,
    /// The CSV columns (empty for NDJSON).
    #[serde(default)]
    columns: Vec<String>,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where an export writes.
enum Sink {
    Stdout(Format),
    File(PathBuf, Format),
}

fn sink(output: Option<&str>) -> Result<Sink, CliError> {
    let Some(text) = output else {
        return Ok(Sink::Stdout(Format::Ndjson));
    };
    match Format::parse(text) {
        Some(Format::Ndjson | Format::Json) => return Ok(Sink::Stdout(Format::Ndjson)),
        Some(Format::Csv) => return Ok(Sink::Stdout(Format::Csv)),
        Some(Format::Table) => {
            return usage("export writes NDJSON or CSV: -o FILE.ndjson or -o FILE.csv");
        }
        None => {}
    }
    let path = PathBuf::from(text);
    match path.extension().and_then(|e| e.to_str()) {
        Some("ndjson" | "jsonl") => Ok(Sink::File(path, Format::Ndjson)),
        Some("csv") => Ok(Sink::File(path, Format::Csv)),
        _ => usage(format!(
            "-o {text:?}: name the file .ndjson (or .jsonl) or .csv"
        )),
    }
}

/// A CSV cell: strings as they are, null empty, the rest as JSON.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn export(ctx: &Ctx, args: ExportArgs) -> Result<(), CliError> {
    let (app, coll) = ctx.target(&args.target)?;
    let sink = sink(ctx.global.output.as_deref())?;
    let query = crate::ops::items_query(&args.query)?;
    let what = format!("{app}/{coll}?{:?}", query.to_pairs());
    let (path, format) = match &sink {
        Sink::File(p, f) => (Some(p.clone()), *f),
        Sink::Stdout(f) => (None, *f),
    };
    if args.resume && path.is_none() {
        return usage("--resume needs the file of the interrupted export: -o FILE");
    }
    let checkpoint_path = path.as_ref().map(|p| sibling(p, ".export-checkpoint"));
    let mut state = ExportState {
        offset: 0,
        bytes: 0,
        what: what.clone(),
        columns: Vec::new(),
    };
    let mut writer: Box<dyn std::io::Write> = match (&path, args.resume) {
        (None, _) => Box::new(BufWriter::new(std::io::stdout().lock())),
        (Some(p), false) => {
            Box::new(BufWriter::new(std::fs::File::create(p).map_err(|e| {
                CliError::Other(format!("cannot create {}: {e}", p.display()))
            })?))
        }
        (Some(p), true) => {
            let Some(cp) = checkpoint_path.as_ref() else {
                return usage("--resume needs the file of the interrupted export: -o FILE");
            };
            let text = std::fs::read_to_string(cp).map_err(|_| {
                CliError::Usage(format!(
                    "nothing to resume: {} is not there (the export finished, or never started)",
                    cp.display()
                ))
            })?;
            state = serde_json::from_str(&text).map_err(|_| {
                CliError::Other(format!(
                    "{} is damaged; export again without --resume",
                    cp.display()
                ))
            })?;
            if state.what != what {
                return usage(format!(
                    "{} belongs to another export ({}): resume with the same APP, COLL and filters",
                    cp.display(),
                    state.what
                ));
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| CliError::Other(format!("cannot open {}: {e}", p.display())))?;
            file.set_len(state.bytes)
                .and_then(|()| file.seek(std::io::SeekFrom::End(0)).map(drop))
                .map_err(|e| CliError::Other(format!("cannot resume {}: {e}", p.display())))?;
            ctx.say(format!(
                "Resuming after {} items ({} bytes of {}).",
                state.offset,
                state.bytes,
                p.display()
            ));
            Box::new(BufWriter::new(file))
        }
    };
    // Where this run starts: `state.offset` moves on with each save.
    let base = state.offset;
    let client = ctx.client().await?;
    let mut export = client
        .export(app, coll, &query)
        .concurrency(args.concurrency.max(1));
    if state.offset > 0 {
        export = export.resume_from(ExportCheckpoint {
            offset: state.offset,
        });
    }
    if let Some(n) = args.max_items {
        export = export.max_items(n.saturating_sub(state.offset));
    }
    let started = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let mut pending_csv: Vec<Value> = Vec::new();
    let mut last_save = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let save = |writer: &mut Box<dyn std::io::Write>,
                state: &mut ExportState,
                offset: u64|
     -> Result<(), CliError> {
        let (Some(file), Some(cp)) = (&path, &checkpoint_path) else {
            return Ok(());
        };
        writer
            .flush()
            .map_err(|e| CliError::Other(format!("cannot write {}: {e}", file.display())))?;
        state.offset = offset;
        state.bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let json = serde_json::to_vec(state).map_err(|e| CliError::Other(e.to_string()))?;
        write_private(cp, &json)
            .map_err(|e| CliError::Other(format!("cannot write {}: {e}", cp.display())))
    };
    // The same filters again: a checkpoint belongs to its query.
    let filters: String = args
        .query
        .filters
        .iter()
        .map(|f| format!(" --filter '{}'", f.replace('\'', "'\\''")))
        .collect();
    let resume_hint = |offset: u64| match &path {
        Some(p) => format!(
            "{offset} items are in {}. Resume with: carthooks export {app} {coll}{filters} -o {} --resume",
            p.display(),
            p.display()
        ),
        None => format!("{offset} items were written (stdout cannot be resumed: use -o FILE)"),
    };
    let outcome: Result<(), CliError> = loop {
        let next = tokio::select! {
            next = export.next_item() => next,
            _ = &mut ctrl_c => {
                break Err(CliError::Interrupted(String::new()));
            }
        };
        let item = match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(CliError::Sdk(e)),
            Some(Ok(item)) => item,
        };
        let bar = bar.get_or_insert_with(|| {
            let total = export
                .stats()
                .first_total
                .map(|t| args.max_items.map_or(t, |m| m.min(t)));
            let b = progress_bar(ctx, total, "items");
            b.set_position(base);
            b
        });
        let step = match format {
            Format::Csv if state.columns.is_empty() => {
                pending_csv.push(item);
                if pending_csv.len() < 100 {
                    continue;
                }
                write_csv_head(&mut writer, &mut state, &mut pending_csv)
            }
            Format::Csv => write_csv_row(&mut writer, &state.columns, &item),
            _ => serde_json::to_writer(&mut writer, &item)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"))
                .map_err(|e| CliError::Other(format!("cannot write: {e}"))),
        };
        if let Err(e) = step {
            break Err(e);
        }
        bar.set_position(base + export.stats().items);
        if last_save.elapsed() > Duration::from_secs(1) && pending_csv.is_empty() {
            let done = export.checkpoint().offset;
            if let Err(e) = save(&mut writer, &mut state, done) {
                break Err(e);
            }
            last_save = Instant::now();
        }
    };
    if !pending_csv.is_empty() {
        write_csv_head(&mut writer, &mut state, &mut pending_csv)?;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let done = export.checkpoint().offset;
    match outcome {
        Ok(()) => {
            finish(writer.flush())?;
            drop(writer);
            if let Some(cp) = &checkpoint_path {
                let _ = std::fs::remove_file(cp);
            }
            let stats = export.stats();
            let total = base + stats.items;
            let to = path
                .as_ref()
                .map_or("stdout".to_owned(), |p| p.display().to_string());
            ctx.say(format!(
                "Exported {total} items to {to} in {:.1} s ({}).{}",
                started.elapsed().as_secs_f64(),
                rate(stats.items, started.elapsed()),
                if stats.total_changed {
                    " The collection changed during the export: an item may be missing or newer than the rest."
                } else {
                    ""
                }
            ));
            Ok(())
        }
        Err(e) => {
            save(&mut writer, &mut state, done)?;
            let hint = resume_hint(done);
            Err(match e {
                CliError::Interrupted(_) => CliError::Interrupted(format!("Interrupted. {hint}")),
                CliError::Sdk(e) => CliError::Other(format!("{}. {hint}", CliError::Sdk(e))),
                other => CliError::Other(format!("{other}. {hint}")),
            })
        }
    }
}

fn write_csv_head(
    writer: &mut Box<dyn std::io::Write>,
    state: &mut ExportState,
    pending: &mut Vec<Value>,
) -> Result<(), CliError> {
    let (columns, _) = tabulate(&Value::Array(pending.clone()));
    state.columns = columns;
    let mut w = csv::Writer::from_writer(&mut *writer);
    w.write_record(&state.columns)
        .map_err(|e| CliError::Other(format!("cannot write: {e}")))?;
    drop(w);
    for item in pending.drain(..) {
        write_csv_row(writer, &state.columns, &item)?;
    }
    Ok(())
}

fn write_csv_row(
    writer: &mut Box<dyn std::io::Write>,
    columns: &[String],
    item: &Value,
) -> Result<(), CliError> {
    let (item_columns, rows) = tabulate(item);
    if let Some(extra) = item_columns.iter().find(|c| !columns.contains(c)) {
        return Err(CliError::Other(format!(
            "item {} has {extra:?}, not among the CSV columns (taken from the first 100 items); export to .ndjson to keep every field",
            item.get("id").map_or(String::new(), Value::to_string)
        )));
    }
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(&mut *writer);
    w.write_record(columns.iter().map(|c| {
        item_columns
            .iter()
            .position(|ic| ic == c)
            .map_or(String::new(), |i| csv_cell(&row[i]))
    }))
    .and_then(|()| w.flush().map_err(Into::into))
    .map_err(|e| CliError::Other(format!("cannot write: {e}")))
}

/// Reads every row of an import's input; a malformed one is an error with
/// its line, before anything is sent.
fn read_rows(path: &Path) -> Result<Vec<Value>, CliError> {
    let is_csv = path.extension().is_some_and(|e| e == "csv");
    let text = crate::ops::read_input(path)?;
    if is_csv {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
            .clone();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                CliError::Usage(format!(
                    "{} row {}: {e}; nothing was sent",
                    path.display(),
                    i + 1
                ))
            })?;
            let mut row = Map::new();
            for (name, cell) in headers.iter().zip(record.iter()) {
                if !cell.is_empty() && name != "id" {
                    row.insert(name.to_owned(), Value::String(cell.to_owned()));
                }
            }
            rows.push(Value::Object(row));
        }
        return Ok(rows);
    }
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            CliError::Usage(format!(
                "{} line {} is not JSON ({e}); nothing was sent",
                path.display(),
                i + 1
            ))
        })?;
        let Value::Object(mut map) = value else {
            return usage(format!(
                "{} line {} is not a JSON object; nothing was sent",
                path.display(),
                i + 1
            ));
        };
        // An exported item: its title and fields are the row.
        if let Some(Value::Object(fields)) = map.remove("fields") {
            let mut row = fields;
            if let Some(title) = map.remove("title") {
                row.insert("title".into(), title);
            }
            rows.push(Value::Object(row));
        } else {
            rows.push(Value::Object(map));
        }
    }
    Ok(rows)
}

pub async fn import(ctx: &Ctx, args: ImportArgs) -> Result<(), CliError> {
    let (target, file) = match &args.args[..] {
        [file] => (
            crate::args::Target {
                app: None,
                collection: None,
            },
            file,
        ),
        [app, coll, file] => {
            let id = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| CliError::Usage(format!("{s:?} is not an id")))
            };
            (
                crate::args::Target {
                    app: Some(id(app)?),
                    collection: Some(id(coll)?),
                },
                file,
            )
        }
        _ => return usage("give APP COLL FILE, or FILE with the profile's app and collection"),
    };
    let (app, coll) = ctx.target(&target)?;
    let file = PathBuf::from(file);
    if file == Path::new("-") && args.resume {
        return usage("--resume needs the input as a file, not stdin");
    }
    let rows = read_rows(&file)?;
    let total = rows.len() as u64;
    let checkpoint_path = if file == Path::new("-") {
        std::env::temp_dir().join(format!(
            "carthooks-import-{}.checkpoint",
            std::process::id()
        ))
    } else {
        sibling(&file, ".import-checkpoint")
    };
    if checkpoint_path.exists() && !args.resume {
        return usage(format!(
            "an earlier import of {} did not finish ({} is there): run again with --resume to send only what is left, or delete that file to start over",
            file.display(),
            checkpoint_path.display()
        ));
    }
    let report_path = args
        .report
        .clone()
        .unwrap_or_else(|| sibling(&file, ".problems.ndjson"));
    let checkpoint = FileCheckpoint::open(&checkpoint_path)
        .map_err(|e| CliError::Other(format!("cannot open {}: {e}", checkpoint_path.display())))?;
    let client = ctx.client().await?;
    let bar = progress_bar(ctx, Some(total), "rows");
    let stop = ImportStop::new();
    let mut import = client
        .import(app, coll, rows)
        .concurrency(args.concurrency.max(1))
        .checkpoint(checkpoint)
        .stop_on(stop.clone())
        .on_progress({
            let bar = bar.clone();
            move |stats| bar.set_position(stats.finished())
        });
    if let Some(field) = &args.upsert_by {
        import = import.upsert_by(field.clone());
    }
    if let Some(n) = args.rate_limit {
        import = import.rate_limit(n);
    }
    let resume = {
        let mut cmd = format!("carthooks import {app} {coll} {} --resume", file.display());
        if let Some(f) = &args.upsert_by {
            cmd.push_str(&format!(" --upsert-by {f}"));
        }
        cmd
    };
    let started = Instant::now();
    let stopper = {
        let (stop, bar, quiet) = (stop.clone(), bar.clone(), ctx.global.quiet);
        let resume = resume.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.stop();
                if !quiet {
                    bar.suspend(|| {
                        eprintln!(
                            "Stopping: no new rows; waiting for the requests in flight (Ctrl-C again: stop now)…"
                        );
                    });
                }
            }
            // A second Ctrl-C: stop now. The rows in flight were recorded
            // as started, so a resumed run looks them up (with --upsert-by)
            // or reports them unknown; none is sent twice blindly.
            if tokio::signal::ctrl_c().await.is_ok() {
                bar.finish_and_clear();
                eprintln!(
                    "carthooks: stopped at once. Resume with: {resume}\nRows that were in flight are looked up (--upsert-by) or reported as unknown."
                );
                std::process::exit(130);
            }
        })
    };
    let report = import.run().await?;
    stopper.abort();
    bar.finish_and_clear();
    let s = report.stats;
    let problems = s.failed + s.unknown + s.not_started;
    if problems > 0 {
        let file = std::fs::File::create(&report_path)
            .map_err(|e| CliError::Other(format!("cannot write {}: {e}", report_path.display())))?;
        let mut out = BufWriter::new(file);
        report
            .write_problems(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| CliError::Other(format!("cannot write {}: {e}", report_path.display())))?;
    } else {
        let _ = std::fs::remove_file(&checkpoint_path);
        let _ = std::fs::remove_file(&report_path);
    }
    let summary = format!(
        "{} of {total} rows into {app}/{coll} in {:.1} s ({}): {} created, {} updated, {} unchanged, {} done before, {} failed, {} unknown, {} not started.",
        s.finished(),
        started.elapsed().as_secs_f64(),
        rate(s.finished() - s.done_before, started.elapsed()),
        s.created,
        s.updated,
        s.unchanged,
        s.done_before,
        s.failed,
        s.unknown,
        s.not_started
    );
    match report.stopped.as_deref() {
        Some(STOPPED_ON_REQUEST) => Err(CliError::Interrupted(format!(
            "Interrupted. {summary}\nResume with: {resume}"
        ))),
        Some(why) => Err(CliError::Other(format!(
            "The import stopped: {why}. {summary}"
        ))),
        None if problems > 0 => {
            let unknown_hint = if s.unknown > 0 && args.upsert_by.is_none() {
                " Rows whose outcome is unknown may have been created: check them, or pass --upsert-by FIELD so a resumed run looks them up."
            } else {
                ""
            };
            Err(CliError::Other(format!(
                "{summary}\nThe rows with problems are in {}. Fix them and run: {resume}{unknown_hint}",
                report_path.display()
            )))
        }
        None => {
            ctx.say(format!("Imported {summary}"));
            Ok(())
        }
    }
}
