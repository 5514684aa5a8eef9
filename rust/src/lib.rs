//! The `calc` world of rust/wit/calc.wit, as a component's core module:
//! exports that take and return strings, lists, records, options and results.
//!
//! No bindings generator is at hand here (std only, no crates), so the
//! canonical ABI is written out: a string or list arrives as a pointer and a
//! length into this module's memory (allocated through `cabi_realloc`), and a
//! result that does not fit one core value is written to a return area whose
//! address the function returns. `rust/build.py` wraps the module into
//! `artifacts/calc.component.wasm` with `wasm-tools component embed` and
//! `component new`.

use std::alloc::{alloc, dealloc, realloc, Layout};

/// Where results too big for one core value are written (one call at a time:
/// a component instance is not re-entered).
#[repr(C, align(8))]
struct ReturnArea([u8; 24]);
static mut RETURN_AREA: ReturnArea = ReturnArea([0; 24]);

/// What the host calls to allocate (or grow) memory for the arguments it passes.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    if new_size == 0 {
        return align as *mut u8;
    }
    let layout = Layout::from_size_align_unchecked(new_size, align);
    let new = if old_size == 0 {
        alloc(layout)
    } else {
        realloc(old, Layout::from_size_align_unchecked(old_size, align), new_size)
    };
    if new.is_null() {
        std::process::abort();
    }
    new
}

unsafe fn take_string(ptr: *mut u8, len: usize) -> String {
    String::from_utf8_unchecked(Vec::from_raw_parts(ptr, len, len))
}

/// Hands a string to the host: its bytes stay allocated until `cabi_post_*`.
unsafe fn give_string(text: String, at: usize) {
    let bytes = text.into_bytes().into_boxed_slice();
    let len = bytes.len();
    let ptr = Box::into_raw(bytes) as *mut u8;
    let area = RETURN_AREA.0.as_mut_ptr();
    *(area.add(at) as *mut u32) = ptr as u32;
    *(area.add(at + 4) as *mut u32) = len as u32;
}

unsafe fn free_string(area: *mut u8, at: usize) {
    let ptr = *(area.add(at) as *const u32) as *mut u8;
    let len = *(area.add(at + 4) as *const u32) as usize;
    if len != 0 {
        dealloc(ptr, Layout::from_size_align_unchecked(len, 1));
    }
}

/// `add: func(a: s32, b: s32) -> s32`, wrapping on overflow.
#[no_mangle]
pub extern "C" fn add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// `greet: func(name: string) -> string`
#[no_mangle]
pub unsafe extern "C" fn greet(ptr: *mut u8, len: usize) -> *mut u8 {
    let name = take_string(ptr, len);
    give_string(format!("Hello, {name}!"), 0);
    RETURN_AREA.0.as_mut_ptr()
}

#[no_mangle]
pub unsafe extern "C" fn cabi_post_greet(area: *mut u8) {
    free_string(area, 0);
}

/// `divide: func(a: f64, b: f64) -> result<f64, string>`: an error for a zero divisor.
#[no_mangle]
pub unsafe extern "C" fn divide(a: f64, b: f64) -> *mut u8 {
    let area = RETURN_AREA.0.as_mut_ptr();
    if b == 0.0 {
        *area = 1;
        give_string(format!("cannot divide {a} by zero"), 8);
    } else {
        *area = 0;
        *(area.add(8) as *mut f64) = a / b;
    }
    area
}

#[no_mangle]
pub unsafe extern "C" fn cabi_post_divide(area: *mut u8) {
    if *area == 1 {
        free_string(area, 8);
    }
}

/// `summarize: func(values: list<f64>) -> summary`: the count, and the mean if any.
#[no_mangle]
pub unsafe extern "C" fn summarize(ptr: *mut f64, len: usize) -> *mut u8 {
    let values = Vec::from_raw_parts(ptr, len, len);
    let area = RETURN_AREA.0.as_mut_ptr();
    *(area as *mut u32) = values.len() as u32;
    if values.is_empty() {
        *area.add(8) = 0;
    } else {
        *area.add(8) = 1;
        *(area.add(16) as *mut f64) = values.iter().sum::<f64>() / values.len() as f64;
    }
    area
}
