//! One CSV row per segmented image, for batch and watch-folder runs on a device: file, size,
//! latency, and for a disc/cup model the vertical cup-to-disc ratio with disc and cup areas,
//! then every class's area. Rows are appended and synced one by one, so a power cut loses at
//! most the row being written.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
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
    /// have been written for a model with the same classes.
    pub fn open(path: &Path, class_names: &[String]) -> Result<Self> {
        let want = header(class_names);
        if let Ok(existing) = File::open(path) {
            let mut first = String::new();
            BufReader::new(existing)
                .read_line(&mut first)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if !first.is_empty() && first.trim_end() != want {
                bail!(
                    "{} has the columns `{}`, this model writes `{want}`: use another --csv file",
                    path.display(),
                    first.trim_end()
                );
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {} for appending", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        if len == 0 {
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
        let write = || -> std::io::Result<()> {
            writeln!(&self.file, "{}", row.join(","))?;
            self.file.sync_data()
        };
        write().with_context(|| format!("cannot append to {}", self.path.display()))
    }
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
}
