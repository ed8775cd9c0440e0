//! Best-effort opening of the authorize URL in the user's browser.

use std::process::{Command, Stdio};

/// Starts the desktop's URL opener when there is a desktop; never fails: the URL is
/// printed anyway.
pub fn open(url: &str) {
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if desktop {
        "xdg-open"
    } else {
        return;
    };
    let spawned = Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        // Reaped in the background so it never becomes a zombie.
        std::thread::spawn(move || child.wait());
    }
}
