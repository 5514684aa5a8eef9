//! Prints `Hello, World!`.
//!
//! With `--forever` (or `HELLO_FOREVER=1` in the environment) it prints the
//! line once a second until it is stopped, as the Krustlet demo does.

use std::io::Write;
use std::time::Duration;

fn main() {
    let forever = std::env::args().skip(1).any(|a| a == "--forever")
        || std::env::var("HELLO_FOREVER").map_or(false, |v| v == "1");
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        if writeln!(out, "Hello, World!").and_then(|_| out.flush()).is_err() {
            std::process::exit(1);
        }
        drop(out);
        if !forever {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
