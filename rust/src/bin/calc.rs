//! Adds numbers: an export to call with `--invoke`, and a command.
//!
//! `calc 2 3` prints `5`; `wasmhost run --invoke add calc.wasm 2 3` calls
//! the exported `add(2, 3)` and prints what it returns. It imports nothing
//! beyond WASI.

/// The export that `--invoke add` (and `Host.run(..., invoke="add")`) calls.
#[no_mangle]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

fn main() {
    let mut sum: i32 = 0;
    for arg in std::env::args().skip(1) {
        match arg.parse::<i32>() {
            Ok(n) => sum = add(sum, n),
            Err(_) => {
                eprintln!("calc: {arg:?} is not a 32-bit integer");
                std::process::exit(2);
            }
        }
    }
    println!("{sum}");
}
