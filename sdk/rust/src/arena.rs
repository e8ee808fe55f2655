//! A bump allocator over a small static arena, falling back to the system allocator: the
//! plugin's global allocator when the SDK's `arena` feature is on (wasm32 only).
//!
//! The host runs each call in a fresh instance, so a call's allocations fit in the arena
//! and never need `memory.grow` (which the system allocator does on its first use, and
//! which costs the host a syscall to map and another to reset). Freeing the most recent
//! allocation gives its space back; other arena frees are no-ops. When the arena is full
//! (a long-lived instance, a huge request) allocation goes to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

const SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Arena {
    bytes: UnsafeCell<[u8; SIZE]>,
    /// Offset of the first free byte.
    next: UnsafeCell<usize>,
}

// SAFETY: wasm32-unknown-unknown plugins are single-threaded.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena {
    bytes: UnsafeCell::new([0; SIZE]),
    next: UnsafeCell::new(0),
};

pub struct Bump;

impl Bump {
    fn base() -> usize {
        ARENA.bytes.get() as usize
    }

    fn owns(ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= Self::base() && p < Self::base() + SIZE
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded, and no reference to `next` outlives this call.
        let next = unsafe { &mut *ARENA.next.get() };
        let base = Self::base();
        let start = (base + *next + layout.align() - 1) & !(layout.align() - 1);
        match start.checked_add(layout.size()) {
            Some(end) if end <= base + SIZE => {
                *next = end - base;
                start as *mut u8
            }
            // SAFETY: forwarded as is.
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::owns(ptr) {
            // SAFETY: as in `alloc`.
            let next = unsafe { &mut *ARENA.next.get() };
            if ptr as usize + layout.size() == Self::base() + *next {
                *next = ptr as usize - Self::base();
            }
        } else {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::owns(ptr) {
            // SAFETY: as in `alloc`.
            let next = unsafe { &mut *ARENA.next.get() };
            let end = ptr as usize + layout.size();
            // The most recent allocation grows or shrinks in place when it fits.
            if end == Self::base() + *next && ptr as usize + new_size <= Self::base() + SIZE {
                *next = ptr as usize + new_size - Self::base();
                return ptr;
            }
        }
        // SAFETY: the default implementation: allocate, copy, free.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
