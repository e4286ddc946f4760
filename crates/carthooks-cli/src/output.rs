//! Printing results: data on stdout in the format asked for (a table on a
//! terminal, JSON when piped), `--jq` applied to the whole result first.
//!
//! | format | an item list | one object | with `--jq` and no `-o` |
//! |---|---|---|---|
//! | `table` | a row per item: id, title, the fields | KEY VALUE lines | — |
//! | `json` | an indented array | indented | — |
//! | `ndjson` | one item a line | one line | — |
//! | `csv` | a header, a row per item | a header, one row | — |
//! | (none) | table on a terminal, else JSON | same | each result a line; strings raw, as `gh --jq` |

use std::io::{IsTerminal as _, Write};

use serde_json::Value;

use crate::args::Format;
use crate::error::{CliError, usage};

impl Format {
    /// `table`, `json`, `ndjson` (`jsonl`), `csv`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// A compiled `--jq` filter.
pub struct Jq {
    filter: jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>,
}

impl Jq {
    /// Compiles `code`, or says what is wrong with it.
    pub fn compile(code: &str) -> Result<Self, CliError> {
        use jaq_core::load::{Arena, File, Loader};
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errors| {
                CliError::Usage(format!(
                    "--jq {code:?} does not parse ({} error{})",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" }
                ))
            })?;
        let filter = jaq_core::Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                let names: Vec<String> = errors
                    .iter()
                    .flat_map(|(_, errs)| errs.iter().map(|(name, _)| (*name).to_owned()))
                    .collect();
                CliError::Usage(format!(
                    "--jq {code:?}: unknown name{} {}",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                ))
            })?;
        Ok(Self { filter })
    }

    /// Every output of the filter on `input`.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, CliError> {
        use jaq_core::{Ctx, Vars, data, unwrap_valr};
        let bytes = serde_json::to_vec(input).map_err(|e| CliError::Other(e.to_string()))?;
        let input = jaq_json::read::parse_single(&bytes)
            .map_err(|e| CliError::Other(format!("--jq cannot read the result: {e}")))?;
        let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for v in self.filter.id.run((ctx, input)).map(unwrap_valr) {
            let v = v.map_err(|e| CliError::Other(format!("--jq: {e}")))?;
            let text = v.to_string();
            let value = serde_json::from_str(&text).map_err(|_| {
                CliError::Other(format!("--jq gave a value JSON cannot hold: {text}"))
            })?;
            out.push(value);
        }
        Ok(out)
    }
}

/// How results are printed.
pub struct Printer {
    /// As asked with `-o`; `None`: chosen by where stdout goes.
    pub format: Option<Format>,
    pub jq: Option<Jq>,
    /// Only these fields of items (`--fields`).
    pub fields: Vec<String>,
    pub color: bool,
}

impl Printer {
    pub fn new(format: Option<&str>, jq: Option<&str>) -> Result<Self, CliError> {
        let format = match format {
            None => None,
            Some(text) => match Format::parse(text) {
                Some(f) => Some(f),
                None => {
                    return usage(format!(
                        "-o {text:?}: the formats are table, json, ndjson and csv"
                    ));
                }
            },
        };
        let jq = jq.map(Jq::compile).transpose()?;
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Ok(Self {
            format,
            jq,
            fields: Vec::new(),
            color,
        })
    }

    /// The format in effect.
    pub fn format(&self) -> Format {
        self.format.unwrap_or(if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        })
    }

    /// Whether a list can be printed item by item as it arrives: NDJSON
    /// asked for, and no `--jq` (which needs the whole result).
    pub fn streams(&self) -> bool {
        self.format == Some(Format::Ndjson) && self.jq.is_none()
    }

    /// Prints one item of a streamed list as an NDJSON line; `false` once
    /// the reader is gone (`… | head`): stop fetching.
    pub fn print_line(&self, item: Value) -> Result<bool, CliError> {
        let item = self.select_fields(item);
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{item}") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::Other(format!("cannot write the output: {e}"))),
        }
    }

    /// Prints `value` (after `--jq`) to stdout.
    pub fn print(&self, value: Value) -> Result<(), CliError> {
        let value = self.select_fields(value);
        let mut out = std::io::stdout().lock();
        let written = match &self.jq {
            Some(jq) => {
                let results = jq.run(&value)?;
                match self.format {
                    // As gh's --jq: a result a line, strings as they are.
                    None => results.iter().try_for_each(|r| match r {
                        Value::String(s) => writeln!(out, "{s}"),
                        other => writeln!(out, "{other}"),
                    }),
                    Some(Format::Json) => results.iter().try_for_each(|r| {
                        serde_json::to_writer_pretty(&mut out, r)?;
                        writeln!(out)
                    }),
                    Some(format) => {
                        let value = match <[Value; 1]>::try_from(results) {
                            Ok([one]) => one,
                            Err(many) => Value::Array(many),
                        };
                        self.render(&mut out, format, &value)
                    }
                }
            }
            None => self.render(&mut out, self.format(), &value),
        };
        finish(written.and_then(|()| out.flush()))
    }

    fn render(&self, out: &mut impl Write, format: Format, value: &Value) -> std::io::Result<()> {
        match format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, value)?;
                writeln!(out)
            }
            Format::Ndjson => match value {
                Value::Array(items) => items.iter().try_for_each(|v| writeln!(out, "{v}")),
                other => writeln!(out, "{other}"),
            },
            Format::Csv => {
                let (columns, rows) = tabulate(value);
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&columns)?;
                for row in rows {
                    w.write_record(row.iter().map(|c| cell(c, usize::MAX)))?;
                }
                w.flush()
            }
            Format::Table => self.table(out, value),
        }
    }

    fn table(&self, out: &mut impl Write, value: &Value) -> std::io::Result<()> {
        match value {
            Value::Array(list) if list.is_empty() => {
                eprintln!("no results");
                Ok(())
            }
            Value::Array(_) => {
                let (columns, rows) = tabulate(value);
                let rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| r.iter().map(|c| cell(c, 48)).collect())
                    .collect();
                let widths: Vec<usize> = (0..columns.len())
                    .map(|i| {
                        rows.iter()
                            .map(|r| width(&r[i]))
                            .chain([width(&columns[i])])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let header: Vec<String> = columns
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| pad(&c.to_uppercase(), *w))
                    .collect();
                let header = header.join("  ");
                if self.color {
                    writeln!(out, "\x1b[1m{}\x1b[0m", header.trim_end())?;
                } else {
                    writeln!(out, "{}", header.trim_end())?;
                }
                for row in rows {
                    let line: Vec<String> =
                        row.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
                    writeln!(out, "{}", line.join("  ").trim_end())?;
                }
                Ok(())
            }
            Value::Object(_) => {
                let pairs = key_values(value);
                let w = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
                for (k, v) in pairs {
                    if self.color {
                        writeln!(out, "\x1b[1m{}\x1b[0m  {}", pad(&k, w), cell(&v, 200))?;
                    } else {
                        writeln!(out, "{}  {}", pad(&k, w), cell(&v, 200))?;
                    }
                }
                Ok(())
            }
            other => writeln!(out, "{}", cell(other, usize::MAX)),
        }
    }

    /// With `--fields`, items keep only `id`, those fields and `title` if asked.
    fn select_fields(&self, value: Value) -> Value {
        if self.fields.is_empty() {
            return value;
        }
        let keep = |item: Value| -> Value {
            let Value::Object(mut map) = item else {
                return item;
            };
            let mut out = serde_json::Map::new();
            if let Some(id) = map.remove("id") {
                out.insert("id".into(), id);
            }
            let mut fields = serde_json::Map::new();
            let mut from = match map.remove("fields") {
                Some(Value::Object(f)) => f,
                _ => serde_json::Map::new(),
            };
            for name in &self.fields {
                if let Some(v) = from.remove(name) {
                    fields.insert(name.clone(), v);
                } else if let Some(v) = map.remove(name) {
                    out.insert(name.clone(), v);
                }
            }
            out.insert("fields".into(), Value::Object(fields));
            Value::Object(out)
        };
        match value {
            Value::Array(items) => Value::Array(items.into_iter().map(keep).collect()),
            one => keep(one),
        }
    }
}

/// A broken pipe (`carthooks … | head`) is not an error.
pub fn finish(result: std::io::Result<()>) -> Result<(), CliError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Other(format!("cannot write the output: {e}"))),
    }
}

/// Columns and rows of a list: items as id, title, their fields (in the
/// order first seen), then their other members; other objects by member.
pub fn tabulate(value: &Value) -> (Vec<String>, Vec<Vec<Value>>) {
    let list: Vec<&Value> = match value {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    };
    let mut columns: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !columns.contains(&name) {
            columns.push(name);
        }
    };
    let is_item = |v: &Value| v.get("fields").is_some_and(Value::is_object);
    for v in &list {
        match v {
            Value::Object(map) if is_item(v) => {
                add("id".into());
                add("title".into());
                if let Some(Value::Object(f)) = map.get("fields") {
                    f.keys().for_each(|k| add(k.clone()));
                }
                map.keys()
                    .filter(|k| !matches!(k.as_str(), "id" | "title" | "fields"))
                    .for_each(|k| add(k.clone()));
            }
            Value::Object(map) => map.keys().for_each(|k| add(k.clone())),
            _ => add("value".into()),
        }
    }
    let rows = list
        .iter()
        .map(|v| {
            columns
                .iter()
                .map(|c| match v {
                    Value::Object(map) => map
                        .get(c)
                        .filter(|_| c != "fields")
                        .or_else(|| v.get("fields").and_then(|f| f.get(c)))
                        .cloned()
                        .unwrap_or(Value::Null),
                    other if c == "value" => (*other).clone(),
                    _ => Value::Null,
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

/// An object as KEY VALUE pairs: an item's id, title, fields, then the rest.
fn key_values(value: &Value) -> Vec<(String, Value)> {
    let Value::Object(map) = value else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for k in ["id", "title"] {
        if let Some(v) = map.get(k) {
            pairs.push((k.to_owned(), v.clone()));
        }
    }
    if let Some(Value::Object(fields)) = map.get("fields") {
        for (k, v) in fields {
            if !pairs.iter().any(|(seen, _)| seen == k) {
                pairs.push((k.clone(), v.clone()));
            }
        }
    }
    pairs.extend(
        map.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "id" | "title" | "fields"))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    pairs
}

/// A value as a cell: strings as they are, null empty, the rest as JSON; at
/// most `max` characters (then an ellipsis).
fn cell(value: &Value, max: usize) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.replace(['\n', '\r', '\t'], " "),
        other => other.to_string(),
    };
    if text.chars().count() > max {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    let mut out = s.to_owned();
    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(s))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_tabulate_as_id_title_then_fields_in_the_order_first_seen() {
        let items = json!([
            {"id": 1, "title": "a", "fields": {"f_1": "x", "f_2": 2}},
            {"id": 2, "title": "b", "fields": {"f_3": [1]}, "created_at": 5},
        ]);
        let (columns, rows) = tabulate(&items);
        assert_eq!(columns, ["id", "title", "f_1", "f_2", "f_3", "created_at"]);
        assert_eq!(rows[1][4], json!([1]));
        assert_eq!(rows[0][4], Value::Null);
    }

    #[test]
    fn jq_runs_on_the_whole_value_and_reports_bad_filters_plainly() {
        let jq = Jq::compile("map(.n) | add").unwrap();
        assert_eq!(
            jq.run(&json!([{"n": 1}, {"n": 2}])).unwrap(),
            vec![json!(3)]
        );
        let e = Jq::compile("map(").err().unwrap();
        assert!(matches!(e, CliError::Usage(_)) && e.to_string().contains("does not parse"));
        let e = Jq::compile("nosuchfn").err().unwrap();
        assert!(e.to_string().contains("nosuchfn"), "{e}");
    }

    #[test]
    fn cells_are_cut_with_an_ellipsis() {
        assert_eq!(cell(&json!("abcdef"), 4), "abc…");
        assert_eq!(cell(&json!(null), 4), "");
        assert_eq!(cell(&json!({"a": 1}), 40), "{\"a\":1}");
    }
}
