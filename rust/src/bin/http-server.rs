//! The HTTP hello service as a WAGI handler (CGI 1.1 over WASI).
//!
//! The request arrives in environment variables (`REQUEST_METHOD`,
//! `PATH_INFO`, `QUERY_STRING`, `HTTP_*`, ...) and on stdin; the response goes
//! to stdout as CGI headers, a blank line and the body.
//!
//! Routes:
//! - `/` answers `Hello, World!`;
//! - `/echo` answers the method, the query and the request body;
//! - `/env` lists the CGI variables and arguments the handler got;
//! - `/counter` answers how often this instance has counted (always 1:
//!   every request gets a fresh instance);
//! - `/redirect` answers with a `Location` only (a 302);
//! - `/teapot` answers `Status: 418`;
//! - `/panic`, `/spin`, `/alloc` fail (a trap, an endless loop, 64 MiB of
//!   allocation) and `/malformed` writes no CGI headers: for hosts' tests;
//! - `/sleep?MS` sleeps MS milliseconds (5000 by default), then answers;
//! - `/flood?MIB` answers a body of MIB mebibytes (1024 by default);
//! - anything else answers 404.

use std::env;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn respond(status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    write!(out, "Content-Type: {}\n", content_type)?;
    if status != "200 OK" {
        write!(out, "Status: {}\n", status)?;
    }
    write!(out, "\n")?;
    out.write_all(body)?;
    out.flush()
}

fn main() {
    let path = env::var("PATH_INFO").unwrap_or_default();
    let path = if path.is_empty() { "/".to_string() } else { path };
    let result = match path.as_str() {
        "/" => respond("200 OK", "text/plain", b"Hello, World!\n"),
        "/echo" => {
            let mut body = Vec::new();
            if io::stdin().read_to_end(&mut body).is_err() {
                body.clear();
            }
            let method = env::var("REQUEST_METHOD").unwrap_or_default();
            let query = env::var("QUERY_STRING").unwrap_or_default();
            let mut text = format!("method={}\nquery={}\nbody=", method, query).into_bytes();
            text.extend_from_slice(&body);
            respond("200 OK", "text/plain", &text)
        }
        "/env" => {
            let mut vars: Vec<String> = env::vars().map(|(k, v)| format!("{}={}\n", k, v)).collect();
            vars.sort();
            for (i, arg) in env::args().enumerate() {
                vars.push(format!("argv[{}]={}\n", i, arg));
            }
            respond("200 OK", "text/plain", vars.concat().as_bytes())
        }
        "/counter" => {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
            respond("200 OK", "text/plain", format!("{}\n", n).as_bytes())
        }
        "/redirect" => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            write!(out, "Location: /\n\n").and_then(|_| out.flush())
        }
        "/teapot" => respond("418 I'm a teapot", "text/plain", b"short and stout\n"),
        "/panic" => panic!("the handler panicked on purpose"),
        "/spin" => loop {
            COUNTER.fetch_add(1, Ordering::SeqCst);
        },
        "/sleep" => {
            let ms: u64 = env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            respond("200 OK", "text/plain", format!("slept {} ms\n", ms).as_bytes())
        }
        "/flood" => {
            let mib: usize = env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let block = vec![b'x'; 1 << 20];
            let mut result = write!(out, "Content-Type: text/plain\n\n");
            for _ in 0..mib {
                result = result.and_then(|_| out.write_all(&block));
            }
            result.and_then(|_| out.flush())
        }
        "/alloc" => {
            let block = vec![1u8; 64 << 20];
            respond("200 OK", "text/plain", format!("{}\n", block.len()).as_bytes())
        }
        "/malformed" => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            write!(out, "this is not a CGI response").and_then(|_| out.flush())
        }
        _ => respond("404 Not Found", "text/plain", b"Not Found\n"),
    };
    if result.is_err() {
        std::process::exit(1);
    }
}
