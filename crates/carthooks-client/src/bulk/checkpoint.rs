//! Where an import keeps what it has done, so that a resumed run neither
//! repeats nor loses a row.
//!
//! Two records per row: `started` (with a digest of the row) before its first
//! request is sent, and how it finished. A row started and not finished was in
//! flight when the run stopped: whether it took effect is unknown, and a
//! resumed run treats it so (looked up with `upsert_by`, reported otherwise).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use carthooks_core::ItemId;

/// How a row finished, as a checkpoint keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finished {
    /// Created (with the id the server gave, when it gave one).
    Created(Option<ItemId>),
    /// Found by the `upsert_by` key and updated.
    Updated(ItemId),
    /// Found by the `upsert_by` key, already as the row says.
    Unchanged(ItemId),
    /// Refused; nothing was created (a resumed run sends it again).
    Failed,
    /// Sent, and whether it took effect is unknown.
    Unknown,
}

/// One record of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// Row `row` (0-based, in input order) is about to be sent; `digest` is a
    /// hash of its JSON, so that a resumed run can tell that its input is the
    /// same.
    Started {
        /// The row's place in the input.
        row: u64,
        /// FNV-1a of the row's JSON.
        digest: u64,
    },
    /// Row `row` finished.
    Finished {
        /// The row's place in the input.
        row: u64,
        /// How.
        outcome: Finished,
    },
}

/// Where an import records its progress (see [`FileCheckpoint`]). `record`
/// must have kept the record when it returns: a `started` record that was
/// not kept, followed by a crash, would let a resumed run create the row a
/// second time. An error from it stops the import (rows not started are
/// reported as not started).
pub trait ImportCheckpoint: Send {
    /// Every record of earlier runs, in order.
    fn load(&mut self) -> io::Result<Vec<Record>>;
    /// Keeps one record.
    fn record(&mut self, record: &Record) -> io::Result<()>;
}

/// A checkpoint in a file of its own: one line per record, appended
/// (`started 12 9f3a…`, `created 12 4711`, `updated 12 4711`,
/// `unchanged 12 4711`, `failed 12`, `unknown 12`). Each record is one
/// `write` to a file opened for appending, so a killed process leaves every
/// record it wrote (a torn last line is ignored when read). It does not
/// `fsync`: a power loss can lose the last records.
#[derive(Debug)]
pub struct FileCheckpoint {
    path: PathBuf,
    file: std::fs::File,
}

impl FileCheckpoint {
    /// Opens (or creates) the checkpoint at `path`. A record a killed run
    /// did not finish writing (the bytes after the last newline) is cut off,
    /// so that the next record starts a line of its own.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_owned();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let bytes = std::fs::read(&path)?;
        let whole = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        if whole < bytes.len() {
            file.set_len(whole as u64)?;
        }
        Ok(Self { path, file })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ImportCheckpoint for FileCheckpoint {
    fn load(&mut self) -> io::Result<Vec<Record>> {
        let bytes = std::fs::read(&self.path)?;
        let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // What follows the last newline is a record a killed run did not
        // finish writing (or nothing): never trusted.
        lines.pop();
        Ok(lines
            .into_iter()
            .filter_map(|line| std::str::from_utf8(line).ok().and_then(parse_line))
            .collect())
    }

    fn record(&mut self, record: &Record) -> io::Result<()> {
        let mut line = format_line(record);
        line.push('\n');
        self.file.write_all(line.as_bytes())
    }
}

fn format_line(record: &Record) -> String {
    let id = |id: Option<ItemId>| id.map_or_else(|| "-".to_owned(), |i| i.get().to_string());
    match *record {
        Record::Started { row, digest } => format!("started {row} {digest:016x}"),
        Record::Finished { row, outcome } => match outcome {
            Finished::Created(i) => format!("created {row} {}", id(i)),
            Finished::Updated(i) => format!("updated {row} {}", i.get()),
            Finished::Unchanged(i) => format!("unchanged {row} {}", i.get()),
            Finished::Failed => format!("failed {row}"),
            Finished::Unknown => format!("unknown {row}"),
        },
    }
}

fn parse_line(line: &str) -> Option<Record> {
    let mut parts = line.split(' ');
    let kind = parts.next()?;
    let row: u64 = parts.next()?.parse().ok()?;
    let third = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let id = || -> Option<ItemId> { third?.parse::<u64>().ok().map(ItemId::new) };
    let outcome = match (kind, third) {
        ("started", Some(hex)) if hex.len() == 16 => {
            return Some(Record::Started {
                row,
                digest: u64::from_str_radix(hex, 16).ok()?,
            });
        }
        ("created", Some("-")) => Finished::Created(None),
        ("created", Some(_)) => Finished::Created(Some(id()?)),
        ("updated", Some(_)) => Finished::Updated(id()?),
        ("unchanged", Some(_)) => Finished::Unchanged(id()?),
        ("failed", None) => Finished::Failed,
        ("unknown", None) => Finished::Unknown,
        _ => return None,
    };
    Some(Record::Finished { row, outcome })
}

/// FNV-1a, 64 bits: the row digest of `started` records (not for security:
/// it tells a resumed run that its input is the one the checkpoint saw).
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_round_trip_and_a_torn_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("carthooks-cp-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let records = [
            Record::Started {
                row: 0,
                digest: 0xdead_beef,
            },
            Record::Finished {
                row: 0,
                outcome: Finished::Created(Some(ItemId::new(4_711))),
            },
            Record::Finished {
                row: 1,
                outcome: Finished::Created(None),
            },
            Record::Finished {
                row: 2,
                outcome: Finished::Updated(ItemId::new(9)),
            },
            Record::Finished {
                row: 3,
                outcome: Finished::Unchanged(ItemId::new(8)),
            },
            Record::Finished {
                row: 4,
                outcome: Finished::Failed,
            },
            Record::Finished {
                row: 5,
                outcome: Finished::Unknown,
            },
        ];
        {
            let mut cp = FileCheckpoint::open(&dir).unwrap();
            for r in &records {
                cp.record(r).unwrap();
            }
        }
        // A killed writer's torn last line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&dir)
            .unwrap()
            .write_all(b"created 6 47")
            .unwrap();
        // The torn line looks whole ("created 6 47" of "created 6 4711"): it
        // is skipped because no newline ends it.
        let mut cp = FileCheckpoint::open(&dir).unwrap();
        assert_eq!(cp.load().unwrap(), records);
        // …and cut off, so the next record is a line of its own.
        let next = Record::Started { row: 7, digest: 1 };
        cp.record(&next).unwrap();
        let mut expected = records.to_vec();
        expected.push(next);
        assert_eq!(
            FileCheckpoint::open(&dir).unwrap().load().unwrap(),
            expected
        );
        std::fs::write(
            &dir,
            "started 1 00000000deadbeef\nstarted 2 dead\ncreated x 1\nfailed 3 4\n",
        )
        .unwrap();
        assert_eq!(
            FileCheckpoint::open(&dir).unwrap().load().unwrap(),
            [Record::Started {
                row: 1,
                digest: 0xdead_beef
            }]
        );
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn the_digest_is_fnv1a() {
        assert_eq!(digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(digest(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
