//! Master-key rotation of 100,000 data keys, and what the data-key cache costs in time and memory
//! when it holds 100,000 owners.
//!
//! `cargo bench --bench rotation`. Target: `rewrap_100k` < 10 s. The memory figures are printed
//! once, before the timings: heap bytes counted by this binary's global allocator, and the
//! growth of the process's resident set (VmRSS).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{SamplingMode, Throughput, criterion_group, criterion_main};
use stargazer_keys::testkit::DataKey;
use stargazer_keys::{DataKeyStore, Keyring, MasterKey};
use support::rewrap::{OWNERS, copy_prepared, owner, prepare};

/// Counts the bytes the program holds on the heap (requested sizes, not the allocator's overhead).
struct CountingAllocator;

static HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only observes sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) };
        HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            HEAP_BYTES.fetch_add(new_size, Ordering::Relaxed);
            HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The process's resident set, in bytes.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

/// Warms a cache of `OWNERS` entries and prints what it holds on the heap and in the RSS.
fn report_cache_memory(db: &Path, keyring: &Keyring) {
    let (heap_before, rss_before) = (HEAP_BYTES.load(Ordering::Relaxed), rss_bytes());
    let store = DataKeyStore::open(db, keyring.clone(), OWNERS as usize).expect("open the store");
    let heap_opened = HEAP_BYTES.load(Ordering::Relaxed);
    for i in 0..OWNERS {
        store.get(&owner(i)).expect("read").expect("a data key");
    }
    let (heap_after, rss_after) = (HEAP_BYTES.load(Ordering::Relaxed), rss_bytes());
    let per = |bytes: usize| bytes as f64 / OWNERS as f64;
    println!(
        "rotation/cache_memory_100k: heap {:.0} B/entry ({:.0} B/entry for the entries, of which the DataKey itself is {} B; {:.0} B/entry for the preallocated table); RSS +{:.1} MiB = {:.0} B/entry",
        per(heap_after - heap_before),
        per(heap_after - heap_opened),
        std::mem::size_of::<DataKey>(),
        per(heap_opened - heap_before),
        (rss_after - rss_before) as f64 / (1024.0 * 1024.0),
        per(rss_after.saturating_sub(rss_before)),
    );
    drop(store);
}

fn rotation(c: &mut criterion::Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, new) = (MasterKey::generate(), MasterKey::generate());
    let prepared = dir.path().join("prepared.db");
    let started = Instant::now();
    prepare(&prepared, &old);
    println!(
        "rotation: prepared {OWNERS} data keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let run_db = dir.path().join("run.db");
    let reading = Keyring::new(old.clone(), Vec::new());
    let rotating = Keyring::new(new, vec![old]);

    copy_prepared(&prepared, &run_db);
    report_cache_memory(&run_db, &reading);

    let mut group = c.benchmark_group("rotation");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(OWNERS));
    group.bench_function("rewrap_100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                copy_prepared(&prepared, &run_db);
                let store = DataKeyStore::open(&run_db, rotating.clone(), 16).expect("open");
                let start = Instant::now();
                let report = store
                    .rotate(|_, _| ControlFlow::Continue(()))
                    .expect("rotate");
                total += start.elapsed();
                assert_eq!(report.rewrapped(), OWNERS);
            }
            total
        })
    });
    group.bench_function("cache_warm_100k", |b| {
        b.iter_custom(|iters| {
            copy_prepared(&prepared, &run_db);
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store =
                    DataKeyStore::open(&run_db, reading.clone(), OWNERS as usize).expect("open");
                let start = Instant::now();
                for i in 0..OWNERS {
                    store.get(&owner(i)).expect("read").expect("a data key");
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = support::criterion();
    targets = rotation
}
criterion_main!(benches);
