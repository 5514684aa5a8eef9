//! Counts lines, words and bytes of every file in an input directory and
//! writes the report to an output directory.
//!
//! Usage: `wordcount [INPUT_DIR] [OUTPUT_DIR]` (defaults `/input` and
//! `/output`). Writes `OUTPUT_DIR/report.txt`, one line per file, sorted by
//! name, plus a `total` line; prints the total to stdout.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::exit;

struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn count(data: &[u8]) -> Counts {
    let mut words = 0;
    let mut in_word = false;
    for &b in data {
        let space = b.is_ascii_whitespace();
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
    }
    Counts {
        lines: data.iter().filter(|&&b| b == b'\n').count() as u64,
        words,
        bytes: data.len() as u64,
    }
}

fn fail(message: String) -> ! {
    eprintln!("wordcount: {}", message);
    exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = args.get(1).map(String::as_str).unwrap_or("/input");
    let output = args.get(2).map(String::as_str).unwrap_or("/output");

    let entries = fs::read_dir(input).unwrap_or_else(|e| fail(format!("cannot read {}: {}", input, e)));
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| fail(format!("cannot list {}: {}", input, e)));
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();

    let mut report = String::new();
    let mut total = Counts { lines: 0, words: 0, bytes: 0 };
    for name in &names {
        let path = Path::new(input).join(name);
        let data = fs::read(&path).unwrap_or_else(|e| fail(format!("cannot read {}: {}", path.display(), e)));
        let c = count(&data);
        report.push_str(&format!("{} {} {} {}\n", c.lines, c.words, c.bytes, name));
        total.lines += c.lines;
        total.words += c.words;
        total.bytes += c.bytes;
    }
    let summary = format!("{} {} {} total\n", total.lines, total.words, total.bytes);
    report.push_str(&summary);

    let target = Path::new(output).join("report.txt");
    let written = fs::File::create(&target).and_then(|mut f| f.write_all(report.as_bytes()));
    if let Err(e) = written {
        fail(format!("cannot write {}: {}", target.display(), e));
    }
    print!("{}", summary);
}
