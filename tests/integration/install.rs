//! What the installed binary offers without a broker: `--version` names the build.

use assert_cmd::assert::OutputAssertExt;

use crate::util::invstream;

#[test]
fn version_names_the_commit_and_the_profile() {
    // The tests drive the binary built with them: the debug profile, unless --release.
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    for flag in ["--version", "-V"] {
        let output = invstream(&[flag]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        output.assert().success();
        let line = text.trim_end();
        let inner = line
            .strip_prefix(&format!("invstream {} (commit ", env!("CARGO_PKG_VERSION")))
            .and_then(|rest| rest.strip_suffix(&format!(", {profile})")))
            .unwrap_or_else(|| panic!("{flag}: {line:?}"));
        let hash = inner.strip_suffix("-dirty").unwrap_or(inner);
        assert!(
            inner == "unknown" || (hash.len() == 7 && hash.chars().all(|c| c.is_ascii_hexdigit())),
            "{flag}: {line:?}"
        );
    }
}
