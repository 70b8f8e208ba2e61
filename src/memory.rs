//! Keeps the connector's resident memory from ratcheting up. glibc's malloc
//! hands memory freed inside its heaps back to the kernel only when it sits
//! at a heap's top, and by default gives threads up to eight heaps
//! (arenas) per core. Under the soak's storm the connector's resident
//! memory rose by a sixth to a fifth within two minutes and stayed there
//! though nothing more was in use (`SOAK_SEED=1796685516814762858
//! scripts/soak 120`: 39.7 MiB at halfway, 46.8 MiB at the end). Two arenas,
//! and handing free pages back every [`TRIM_INTERVAL`], keep it where the
//! work puts it (the same run: 31.3 MiB, then 30.8 MiB).

use std::time::Duration;

use rocket::fairing::AdHoc;

/// How often free pages are handed back: often enough that a busy minute
/// does not linger, rarely enough that walking the free lists is no load.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Caps glibc's malloc at two arenas, unless `MALLOC_ARENA_MAX` says
/// otherwise: two keep the few threads that allocate at once (the runtime's
/// workers) from queueing on one lock. Call it before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    const ARENAS: libc::c_int = 2;
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt changes an allocator setting; the caller runs it
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

/// Hands the free pages of every arena back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// Trims every [`TRIM_INTERVAL`] for as long as the server runs.
pub(crate) fn trimmer() -> AdHoc {
    AdHoc::on_liftoff("hand free memory back", |_| {
        Box::pin(async {
            tokio::spawn(async {
                let mut every = tokio::time::interval(TRIM_INTERVAL);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    trim();
                }
            });
        })
    })
}
