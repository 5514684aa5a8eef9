//! A probe of what a guest may do, for wasmhost's sandbox tests.
//!
//! Usage: `fsprobe OP [ARGS]...`, one operation per run:
//! `read PATH`, `write PATH TEXT`, `append PATH TEXT`, `truncate PATH`,
//! `create PATH`, `rename FROM TO`, `remove PATH`, `mkdir PATH`,
//! `rmdir PATH`, `list PATH`, `args`, `env`, `stdin`, `alloc MIB`,
//! `exit CODE`, `sleep MS` (then prints `slept`), `flood MIB` (writes MIB
//! mebibytes of `x` to stdout, one write per MiB, and stops at the first
//! failed write).
//! Prints what it read or `ok`; on failure prints the error to stderr and
//! exits with 1.

use std::env;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::process::exit;

fn arg(args: &[String], i: usize) -> &str {
    match args.get(i) {
        Some(a) => a,
        None => {
            eprintln!("fsprobe: missing argument {}", i);
            exit(2);
        }
    }
}

fn run(args: &[String]) -> io::Result<Vec<u8>> {
    let ok = b"ok\n".to_vec();
    match arg(args, 1) {
        "read" => fs::read(arg(args, 2)),
        "write" => fs::write(arg(args, 2), arg(args, 3)).map(|_| ok),
        "append" => OpenOptions::new()
            .append(true)
            .open(arg(args, 2))
            .and_then(|mut f| f.write_all(arg(args, 3).as_bytes()))
            .map(|_| ok),
        "truncate" => OpenOptions::new().write(true).truncate(true).open(arg(args, 2)).map(|_| ok),
        "create" => OpenOptions::new().write(true).create_new(true).open(arg(args, 2)).map(|_| ok),
        "rename" => fs::rename(arg(args, 2), arg(args, 3)).map(|_| ok),
        "remove" => fs::remove_file(arg(args, 2)).map(|_| ok),
        "mkdir" => fs::create_dir(arg(args, 2)).map(|_| ok),
        "rmdir" => fs::remove_dir(arg(args, 2)).map(|_| ok),
        "list" => {
            let mut names: Vec<String> = Vec::new();
            for entry in fs::read_dir(arg(args, 2))? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names.iter().map(|n| format!("{}\n", n)).collect::<String>().into_bytes())
        }
        "args" => Ok(args.iter().map(|a| format!("{}\n", a)).collect::<String>().into_bytes()),
        "env" => {
            let mut vars: Vec<String> = env::vars().map(|(k, v)| format!("{}={}\n", k, v)).collect();
            vars.sort();
            Ok(vars.concat().into_bytes())
        }
        "stdin" => {
            let mut data = Vec::new();
            io::stdin().read_to_end(&mut data)?;
            Ok(data)
        }
        "alloc" => {
            let mib: usize = arg(args, 2).parse().unwrap_or(0);
            let block = vec![7u8; mib << 20];
            Ok(format!("allocated {} MiB, checksum {}\n", mib, block.iter().map(|&b| b as usize).sum::<usize>()).into_bytes())
        }
        "exit" => exit(arg(args, 2).parse().unwrap_or(2)),
        "sleep" => {
            let ms: u64 = arg(args, 2).parse().unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(b"slept\n".to_vec())
        }
        "flood" => {
            let mib: usize = arg(args, 2).parse().unwrap_or(0);
            let block = vec![b'x'; 1 << 20];
            let stdout = io::stdout();
            let mut lock = stdout.lock();
            for _ in 0..mib {
                lock.write_all(&block)?;
            }
            Ok(Vec::new())
        }
        other => {
            eprintln!("fsprobe: unknown operation {}", other);
            exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    match run(&args) {
        Ok(out) => {
            let stdout = io::stdout();
            let mut lock = stdout.lock();
            if lock.write_all(&out).and_then(|_| lock.flush()).is_err() {
                exit(1);
            }
        }
        Err(e) => {
            eprintln!("fsprobe: {}", e);
            exit(1);
        }
    }
}
