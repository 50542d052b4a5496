//! The command line of the built binary.

use ironpost_e2e::ironpost;

#[test]
fn version_names_the_program() {
    let out = ironpost(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ironpost "), "{text}");
}

#[test]
fn serve_with_a_missing_config_file_names_it() {
    let out = ironpost(&["serve", "--config", "no-such-file.toml"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("no-such-file.toml"), "{text}");
}

#[test]
fn an_unknown_command_is_refused() {
    let out = ironpost(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
