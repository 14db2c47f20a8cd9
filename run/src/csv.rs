//! One CSV row per segmented image, for batch and watch-folder runs on a device: file, size,
//! latency, and for a disc/cup model the vertical cup-to-disc ratio with disc and cup areas,
//! then every class's area. Rows are appended and synced one by one, so a power cut loses at
//! most the row being written.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::segment::Segmented;

pub struct CsvLog {
    file: File,
    path: PathBuf,
}

/// The header for a model with these classes.
fn header(class_names: &[String]) -> String {
    let mut cols: Vec<String> = [
        "file",
        "width",
        "height",
        "latency_ms",
        "vertical_cdr",
        "disc_px",
        "cup_px",
    ]
    .map(String::from)
    .to_vec();
    cols.extend(class_names.iter().map(|n| field(&format!("{n}_px"))));
    cols.join(",")
}

/// A CSV field, quoted when it holds a separator, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

impl CsvLog {
    /// Opens `path` for appending. A new or empty file gets the header; an existing one must
    /// have been written for a model with the same classes. A partial last row (left by a
    /// crash or a full disk mid-append) is cut off, with a warning, so the next row starts on
    /// a line of its own.
    pub fn open(path: &Path, class_names: &[String]) -> Result<Self> {
        let want = header(class_names);
        let mut file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        let complete = repair(&mut file, path, &want)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if complete == 0 {
            writeln!(file, "{want}").with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends the row for `image` and syncs it to disk.
    pub fn append(&mut self, image: &Path, s: &Segmented) -> Result<()> {
        let (cdr, disc, cup) = match &s.disc_cup {
            Some(dc) => (
                dc.vertical_cdr.map_or(String::new(), |v| format!("{v:.4}")),
                dc.disc_px.to_string(),
                dc.cup_px.to_string(),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let mut row = vec![
            field(&image.display().to_string()),
            s.hw[1].to_string(),
            s.hw[0].to_string(),
            format!("{:.3}", s.runtime_ms),
            cdr,
            disc,
            cup,
        ];
        row.extend(s.areas.iter().map(|a| a.to_string()));
        let line = row.join(",") + "\n";
        // One write of the whole line: with O_APPEND, rows of two writers never interleave.
        let write = || -> std::io::Result<()> {
            (&self.file).write_all(line.as_bytes())?;
            self.file.sync_data()
        };
        write().with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// Checks that `file` is a CSV log with the columns `want` (or empty) and cuts off a partial
/// last row; returns the length of what is left. A file whose first line is not this header
/// is left untouched, so a wrong --csv never loses data.
fn repair(file: &mut File, path: &Path, want: &str) -> Result<u64> {
    let len = file.metadata()?.len();
    let complete = complete_len(file)?;
    let mut first = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    BufReader::new((&*file).take(want.len() as u64 + 2)).read_until(b'\n', &mut first)?;
    let line = String::from_utf8_lossy(&first);
    let ours = if complete == 0 {
        // No line break at all: only a header cut short is ours to repair.
        want.starts_with(&*line)
    } else {
        line.trim_end_matches(['\n', '\r']) == want
    };
    if !ours {
        bail!(
            "{} has the columns `{}`, this model writes `{want}`: use another --csv file",
            path.display(),
            line.trim_end()
        );
    }
    if complete < len {
        file.seek(SeekFrom::Start(complete))?;
        let mut torn = Vec::new();
        file.read_to_end(&mut torn)?;
        file.set_len(complete)?;
        eprintln!(
            "warning: {}: removed a partial last row `{}` (a crash or a full disk while it \
             was written); the rows before it are kept",
            path.display(),
            String::from_utf8_lossy(&torn)
        );
    }
    Ok(complete)
}

/// The length of `file` up to and including its last line break (0 when it has none), read
/// backwards so a long log costs one block.
fn complete_len(file: &mut File) -> std::io::Result<u64> {
    let mut end = file.metadata()?.len();
    let mut block = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(field("a.png"), "a.png");
        assert_eq!(field("a,b.png"), "\"a,b.png\"");
        assert_eq!(field("say \"hi\".png"), "\"say \"\"hi\"\".png\"");
    }

    #[test]
    fn a_file_for_other_classes_is_refused() {
        let dir = std::env::temp_dir().join(format!("msnet-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.csv");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        CsvLog::open(&path, &names(&["background", "cup"])).unwrap();
        CsvLog::open(&path, &names(&["background", "cup"])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "one header only: {text}");
        let e = CsvLog::open(&path, &names(&["background", "cell"]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("r.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("msnet-csv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn a_row() -> Segmented {
        Segmented {
            hw: [2, 3],
            runtime_ms: 1.5,
            areas: vec![4, 2],
            disc_cup: None,
            located: None,
            mask: PathBuf::new(),
            overlay: PathBuf::new(),
        }
    }

    #[test]
    fn a_torn_last_row_is_cut_off_before_the_next_one() {
        let dir = scratch("torn");
        let path = dir.join("r.csv");
        let classes = names(&["background", "cup"]);
        let mut log = CsvLog::open(&path, &classes).unwrap();
        log.append(Path::new("a.png"), &a_row()).unwrap();
        let whole = std::fs::read_to_string(&path).unwrap();
        // A crash in the middle of the next append.
        std::fs::write(&path, format!("{whole}b.png,3,2,1.2")).unwrap();
        CsvLog::open(&path, &classes)
            .unwrap()
            .append(Path::new("c.png"), &a_row())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 3, "{text}");
        assert!(
            rows[1].starts_with("a.png,") && rows[2].starts_with("c.png,"),
            "{text}"
        );
        assert!(rows.iter().all(|r| r.split(',').count() == 9), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_header_is_rewritten_but_a_foreign_file_is_left_alone() {
        let dir = scratch("header");
        let path = dir.join("r.csv");
        let classes = names(&["background", "cup"]);
        std::fs::write(&path, "file,wid").unwrap();
        CsvLog::open(&path, &classes).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            header(&classes) + "\n"
        );
        let notes = dir.join("notes.txt");
        std::fs::write(&notes, "my notes, no line break").unwrap();
        assert!(CsvLog::open(&notes, &classes).is_err());
        assert_eq!(
            std::fs::read_to_string(&notes).unwrap(),
            "my notes, no line break"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
