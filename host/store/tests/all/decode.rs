//! Goal: hostile bytes cannot make the store's decoder allocate much more
//! than they hold, nor recurse without bound. Method: count every byte the
//! decoding thread allocates (a counting global allocator, per thread so
//! that tests running alongside do not interfere) while `decode_bounded`
//! reads inputs whose length prefixes claim 2^60 elements or bytes, nested
//! transactions that each claim 2^60 operations, and a megabyte of nested
//! batch headers.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engenho_store::{Command, decode_bounded};

/// Most bytes one decode of a few kilobytes of hostile input may
/// allocate: room for what the input holds, never for what it claims.
const DECODE_ALLOCATION_BYTES_MAX: usize = 64 * 1024;

/// The system allocator, counting what each thread allocates.
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// count is a thread-local cell that allocates nothing.
#[expect(unsafe_code, reason = "a global allocator is an unsafe trait; this one only counts and forwards")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|total| total.set(total.get().saturating_add(layout.size())));
        // SAFETY: the caller's layout is passed on as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `System.alloc` with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Bytes the current thread allocates while running `work`.
fn allocated_by(work: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    work();
    ALLOCATED.with(Cell::get) - before
}

/// A `Command::Batch` header as `bincode::serialize` writes it.
fn batch_header(count: u64) -> Vec<u8> {
    let mut header = 6u32.to_le_bytes().to_vec();
    header.extend_from_slice(&count.to_le_bytes());
    header
}

#[test]
fn lengths_claiming_2_to_the_60_elements_allocate_little() {
    let mut batch = batch_header(1 << 60);
    batch.extend_from_slice(&[0; 10]);
    let mut put = 0u32.to_le_bytes().to_vec();
    put.extend_from_slice(&(1u64 << 60).to_le_bytes());
    put.extend_from_slice(&[b'k'; 10]);
    for input in [batch, put] {
        let allocated = allocated_by(|| assert!(decode_bounded::<Command>(&input).is_err()));
        assert!(allocated <= DECODE_ALLOCATION_BYTES_MAX, "{allocated} bytes allocated for {} bytes", input.len());
    }
}

#[test]
fn nested_transactions_each_claiming_2_to_the_60_operations_allocate_little() {
    let mut input = 2u32.to_le_bytes().to_vec();
    for _ in 0..60 {
        input.extend_from_slice(&0u64.to_le_bytes());
        input.extend_from_slice(&(1u64 << 60).to_le_bytes());
        input.extend_from_slice(&3u32.to_le_bytes());
    }
    let allocated = allocated_by(|| assert!(decode_bounded::<Command>(&input).is_err()));
    assert!(allocated <= DECODE_ALLOCATION_BYTES_MAX, "{allocated} bytes allocated for {} bytes", input.len());
}

#[test]
fn a_megabyte_of_nested_batch_headers_is_refused_without_recursing_through_it() {
    let nested: Vec<u8> = std::iter::repeat_with(|| batch_header(1)).take(1024 * 1024 / 12).flatten().collect();
    let allocated = allocated_by(|| assert!(decode_bounded::<Command>(&nested).is_err()));
    assert!(allocated <= DECODE_ALLOCATION_BYTES_MAX, "{allocated} bytes allocated");
}
