//! The `constant-contact-fake` binary refuses options it cannot work with.

use std::process::Command;

#[test]
fn rps_zero_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_constant-contact-fake"))
        .args(["--contacts", "5", "--rps", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing is served");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--rps must be at least 1"), "{stderr}");
}
