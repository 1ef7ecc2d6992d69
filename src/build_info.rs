//! What this binary was built from, for `--version` and the man pages: the package version, the
//! git commit and the build profile (both named by `build.rs`).

/// What `invstream --version` prints after the name, e.g. `0.1.0 (commit 1a2b3c4, release)`:
/// the commit is a short hash, `-dirty` when tracked files had changes, `unknown` when built
/// outside a git checkout (from a crate tarball); the profile `debug` or `release`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("INVSTREAM_GIT_COMMIT"),
    ", ",
    env!("INVSTREAM_BUILD_PROFILE"),
    ")"
);

/// The git commit alone, as in [`VERSION`] (`/metrics` shows it as a label).
pub const COMMIT: &str = env!("INVSTREAM_GIT_COMMIT");
/// The build profile alone, as in [`VERSION`].
pub const PROFILE: &str = env!("INVSTREAM_BUILD_PROFILE");
/// The package version alone, as in [`VERSION`].
pub const PACKAGE_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `version` reads `X.Y.Z (commit HASH[-dirty]|unknown, debug|release)`.
    fn well_formed(version: &str) -> bool {
        let Some(rest) = version.strip_prefix(env!("CARGO_PKG_VERSION")) else {
            return false;
        };
        let Some(inner) = rest
            .strip_prefix(" (commit ")
            .and_then(|r| r.strip_suffix(')'))
        else {
            return false;
        };
        let Some((commit, profile)) = inner.split_once(", ") else {
            return false;
        };
        let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
        let commit_ok =
            commit == "unknown" || (hash.len() == 7 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        commit_ok && ["debug", "release"].contains(&profile)
    }

    #[test]
    fn version_names_the_commit_and_the_profile() {
        assert!(well_formed(VERSION), "{VERSION}");
        // Built from a git checkout (`.git` is a folder, or a file in a linked work tree), the
        // commit is known.
        if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".git")
            .exists()
        {
            assert!(!VERSION.contains("unknown"), "{VERSION}");
        }
        // Tests build with the debug profile (`cargo test --release` would say release).
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        assert!(VERSION.ends_with(&format!(", {profile})")), "{VERSION}");
        assert_eq!(
            VERSION,
            format!("{PACKAGE_VERSION} (commit {COMMIT}, {PROFILE})")
        );
    }

    #[test]
    fn the_format_check_refuses_other_shapes() {
        let v = env!("CARGO_PKG_VERSION");
        assert!(well_formed(&format!("{v} (commit 1a2b3c4, release)")));
        assert!(well_formed(&format!("{v} (commit 1a2b3c4-dirty, debug)")));
        assert!(well_formed(&format!("{v} (commit unknown, release)")));
        assert!(!well_formed(v));
        assert!(!well_formed(&format!("{v} (commit 1a2b3c4)")));
        assert!(!well_formed(&format!("{v} (commit xyz, release)")));
        assert!(!well_formed(&format!("{v} (commit 1a2b3c4, fast)")));
    }
}
