//! The heap allocator: the C library's (mimalloc in the static musl build), except that once
//! `keyfence run` holds secrets every block is zeroed before it goes back to it.
//!
//! Values keyfence owns live in zeroizing buffers (`SecretValue`), but the standard library
//! makes its own copies that it frees plainly: `std::process::Command` copies each environment
//! entry into a C string and an array for `execve`, formatting and `OsString` conversions copy
//! again. A supervisor lives as long as its command, so those freed copies would sit in its heap
//! for hours. Zeroing every freed block is the one place that reaches them all. It is off until
//! `run` turns it on, so scans and audits, which allocate heavily and hold no values, pay
//! nothing. Written by hand: the crates that do this zero unconditionally.
#![expect(
    unsafe_code,
    reason = "a global allocator implements an unsafe trait; each block is zeroed while the caller still owns it"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroize;

// The allocator underneath: the C library's, except under musl (the static release build),
// whose allocator serialises threads (see Cargo.toml).
#[cfg(target_env = "musl")]
use mimalloc::MiMalloc as Backing;
#[cfg(not(target_env = "musl"))]
use std::alloc::System as Backing;

static ZERO_ON_FREE: AtomicBool = AtomicBool::new(false);

/// From now on, every freed heap block is zeroed first.
pub fn zero_freed_memory() {
    ZERO_ON_FREE.store(true, Ordering::SeqCst);
}

pub struct ZeroOnFree;

// SAFETY: every method forwards to `Backing` with the caller's own pointer and layout; the only
// additions are writes of zeros over a block the caller owns and is giving up, and a realloc
// made of alloc, copy and dealloc, which is what `GlobalAlloc::realloc`'s default does.
unsafe impl GlobalAlloc for ZeroOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { Backing.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { Backing.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ZERO_ON_FREE.load(Ordering::Relaxed) {
            // SAFETY: the caller guarantees `ptr` is a live block of `layout.size()` bytes
            // allocated here, which it no longer uses. `zeroize` writes volatilely, so the
            // compiler cannot drop the writes as dead stores.
            unsafe { std::slice::from_raw_parts_mut(ptr, layout.size()) }.zeroize();
        }
        // SAFETY: forwarded unchanged.
        unsafe { Backing.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !ZERO_ON_FREE.load(Ordering::Relaxed) {
            // SAFETY: forwarded unchanged.
            return unsafe { Backing.realloc(ptr, layout, new_size) };
        }
        // The underlying realloc may move the block and free the old one unzeroed: move it here.
        // SAFETY: the caller guarantees `new_size`, rounded up to the alignment, does not
        // overflow (GlobalAlloc::realloc's contract), so the layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero-sized layout, as the contract requires.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block is ours to free, with its own layout.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
