//! The HTTP hello service as a WAGI handler (CGI 1.1 over WASI).
//!
//! The request arrives in environment variables (`REQUEST_METHOD`,
//! `PATH_INFO`, `QUERY_STRING`, `HTTP_*`, ...) and on stdin; the response goes
//! to stdout as CGI headers, a blank line and the body.
//!
//! Routes:
//! - `/` answers `Hello, World!`;
//! - `/echo` answers the method, the query and the request body;
//! - anything else answers 404.

use std::env;
use std::io::{self, Read, Write};

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
        _ => respond("404 Not Found", "text/plain", b"Not Found\n"),
    };
    if result.is_err() {
        std::process::exit(1);
    }
}
