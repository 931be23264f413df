//! SQLite's memory, served by the process allocator (mimalloc in the binary) instead of the C
//! library's `malloc`.
//!
//! SQLite allocates and frees a page cache for every temporary b-tree a statement opens (a
//! `json_each` list behind `IN`, a sort, a window), about 80 KB at a time. Freeing a chunk
//! that large makes glibc consolidate its whole heap: in a profile of the throughput drain,
//! glibc's `malloc`, `free` and `malloc_consolidate` on SQLite's thread were 13 % of all
//! samples. SQLite's allocation counters (`MEMSTATUS`) take a global mutex on every call and
//! nothing here reads them, so they are switched off as well.
//!
//! Both settings must be made before SQLite initialises, that is before the process opens
//! its first connection; [`install`] is called by every store open and acts once.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::os::raw::{c_int, c_void};
use std::sync::Once;

use libsqlite3_sys as ffi;

/// Each block starts with its usable size, which SQLite asks for (`xSize`) and Rust's
/// deallocation needs; eight bytes keep the block 8-aligned, as SQLite requires.
const HEADER: usize = 8;
const ALIGN: usize = 8;

/// Routes SQLite's allocations to the Rust allocator; a no-op after the first call, and when
/// SQLite was already initialised by someone else (it then keeps its own allocator).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: sqlite3_config runs before any connection exists (every open calls this
        // first, and `Once` makes the others wait); SQLite copies the methods struct.
        let malloc = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_MALLOC,
                &methods as *const ffi::sqlite3_mem_methods,
            )
        };
        // SAFETY: as above; MEMSTATUS takes an int.
        let memstatus = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if malloc != ffi::SQLITE_OK || memstatus != ffi::SQLITE_OK {
            tracing::debug!(
                malloc,
                memstatus,
                "SQLite was initialised already; it keeps its own allocator"
            );
        }
    });
}

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
}

/// The start of the block whose usable part starts at `p`, and that part's size.
///
/// # Safety
/// `p` must come from `x_malloc` or `x_realloc`.
unsafe fn block_of(p: *mut c_void) -> (*mut u8, usize) {
    let base = (p as *mut u8).sub(HEADER);
    (base, (base as *const u64).read() as usize)
}

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    let Some(layout) = usize::try_from(n).ok().filter(|n| *n > 0).and_then(layout) else {
        return std::ptr::null_mut();
    };
    let base = alloc(layout);
    if base.is_null() {
        return std::ptr::null_mut();
    }
    (base as *mut u64).write(n as u64);
    base.add(HEADER) as *mut c_void
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let (base, size) = block_of(p);
    if let Some(layout) = layout(size) {
        dealloc(base, layout);
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        return x_malloc(n);
    }
    let Some(new_size) = usize::try_from(n).ok().filter(|n| *n > 0) else {
        return std::ptr::null_mut();
    };
    let (base, size) = block_of(p);
    let (Some(old), Some(_)) = (layout(size), layout(new_size)) else {
        return std::ptr::null_mut();
    };
    let grown = realloc(base, old, new_size + HEADER);
    if grown.is_null() {
        return std::ptr::null_mut();
    }
    (grown as *mut u64).write(new_size as u64);
    grown.add(HEADER) as *mut c_void
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    block_of(p).1 as c_int
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SQLite never asks for more than 2^31 - 8 bytes at once, so this cannot overflow.
    (n + 7) & !7
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_size_through_realloc_and_are_8_aligned() {
        // SAFETY: blocks come from x_malloc/x_realloc and are freed once.
        unsafe {
            let p = x_malloc(13);
            assert!(!p.is_null() && (p as usize).is_multiple_of(8));
            assert_eq!(x_size(p), 13);
            std::ptr::write_bytes(p as *mut u8, 0xab, 13);
            let q = x_realloc(p, 100_000);
            assert_eq!(x_size(q), 100_000);
            assert_eq!(
                *(q as *const u8).add(12),
                0xab,
                "contents survive a realloc"
            );
            x_free(q);
            assert!(x_malloc(0).is_null());
            x_free(std::ptr::null_mut());
            assert_eq!(x_roundup(13), 16);
        }
    }

    #[tokio::test]
    async fn a_store_opened_after_install_works() {
        install();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::sqlite::SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open");
        store.close().await;
    }
}
