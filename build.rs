//! Names what a binary was built from, for `invstream --version`: the git commit (short hash,
//! `-dirty` when tracked files differed from it; `unknown` outside a git checkout, e.g. from a
//! crate tarball, unless `INVSTREAM_GIT_COMMIT` names it) and the build profile. Only `git`
//! itself is asked, and its absence is no error.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let in_git = is_work_tree_root(&manifest_dir);
    // A build without the repository's .git (a container image's) may be told the commit.
    println!("cargo:rerun-if-env-changed=INVSTREAM_GIT_COMMIT");
    let given = std::env::var("INVSTREAM_GIT_COMMIT").ok();
    let commit = given
        .filter(|c| !c.trim().is_empty())
        .or_else(|| in_git.then(|| commit(&manifest_dir)).flatten())
        .unwrap_or_else(|| "unknown".to_string());
    // `debug` or `release` (a custom profile reads as the one it inherits from).
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=INVSTREAM_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=INVSTREAM_BUILD_PROFILE={profile}");

    // Rerun when a build input changes (it may make the tree dirty or clean again) and when the
    // checkout moves to another commit (HEAD, the branch it names, or the packed refs). Not the
    // index: `git status` rewrites it, and every rerun recompiles the crate. Only paths that
    // exist: cargo reruns a script on every build for a missing one.
    let mut watched: Vec<PathBuf> = ["build.rs", "Cargo.toml", "Cargo.lock", "src", "vendor"]
        .iter()
        .map(|input| manifest_dir.join(input))
        .collect();
    if in_git {
        watched.extend(git_state_files(&manifest_dir));
    }
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git` in `dir`, its output trimmed; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        // A build must not write to the repository (status would refresh the index).
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}

/// Whether the package is the root of a git work tree: a crate unpacked inside some other
/// repository (a home directory kept in git) is not built from that repository's commit.
fn is_work_tree_root(manifest_dir: &Path) -> bool {
    let Some(top) = git(manifest_dir, &["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same(Path::new(&top), manifest_dir)
}

/// The checkout's commit, with `-dirty` when tracked files differ from it (untracked files do
/// not count, as with `git describe --dirty`).
fn commit(manifest_dir: &Path) -> Option<String> {
    let hash = git(manifest_dir, &["rev-parse", "--short=7", "HEAD"])?;
    let changes = git(
        manifest_dir,
        &["status", "--porcelain", "--untracked-files=no"],
    )?;
    Some(match changes.is_empty() {
        true => hash,
        false => format!("{hash}-dirty"),
    })
}

/// The files that change when the checkout moves to another commit: HEAD, the ref it names and
/// the packed refs (in a linked work tree, `.git` is a file and these live elsewhere: git says
/// where).
fn git_state_files(manifest_dir: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(head_ref) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        names.push(head_ref);
    }
    names
        .iter()
        .filter_map(|name| git(manifest_dir, &["rev-parse", "--git-path", name]))
        .map(|path| manifest_dir.join(path))
        .collect()
}
