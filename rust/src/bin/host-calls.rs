//! Calls two functions that its host provides, beyond WASI.
//!
//! It imports `env.log(ptr: i32, len: i32)`, which is handed a UTF-8 string
//! in the guest's memory, and `env.add(a: i32, b: i32) -> i32`. It logs a
//! greeting through the first, adds its arguments (default `2 3`) through
//! the second, and prints the sum. Without those imports it does not start:
//! `wasmhost run` names the missing import.

#[link(wasm_import_module = "env")]
extern "C" {
    fn log(ptr: *const u8, len: usize);
    fn add(a: i32, b: i32) -> i32;
}

fn host_log(text: &str) {
    // The host reads `len` bytes at `ptr` from the guest's memory.
    unsafe { log(text.as_ptr(), text.len()) }
}

fn main() {
    host_log("Hello from the guest!");
    let mut args: Vec<i32> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<i32>() {
            Ok(n) => args.push(n),
            Err(_) => {
                eprintln!("host-calls: {arg:?} is not a 32-bit integer");
                std::process::exit(2);
            }
        }
    }
    if args.is_empty() {
        args = vec![2, 3];
    }
    let sum = args.iter().fold(0, |total, &n| unsafe { add(total, n) });
    println!("{sum}");
}
