//! Named points where a test can stop this process, to kill it exactly there (debug builds
//! only; release builds compile every point to nothing).
//!
//! With `ACCORD_TEST_PAUSE=<point>`, reaching that point writes the point's name to
//! `ACCORD_TEST_PAUSE_FILE` (or `./paused-<point>`) and then waits forever; the test sees
//! the file and sends SIGKILL. A test of a crash thus never depends on how fast the machine
//! is: it kills at a step it observed, not after a guessed delay.

/// Stops here if a test asked to.
pub fn pause(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("ACCORD_TEST_PAUSE").is_ok_and(|p| p == point) {
        let file = std::env::var_os("ACCORD_TEST_PAUSE_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| format!("paused-{point}").into());
        let _ = std::fs::write(&file, point);
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
