//! Records the commit Sigil is built from (`sigil --version`, `sigil::BUILD_COMMIT`):
//! `SIGIL_COMMIT` from the environment when set (a build from a source tarball), else
//! `git rev-parse --short HEAD`, else `unknown`. Rebuilt when HEAD or the branch it names moves.
//!
//! On Linux with glibc, links the `sigil` binary with packed relative relocations (RELR,
//! glibc 2.36 and later: Debian 12, Ubuntu 24.04; the package depends on it): the
//! position-independent binary's 27,000 relocations take 7.5 KB instead of the 650 KB that the
//! loader reads on every start, 0.65 MiB of an idle server's resident set.
//!
//! Release builds linked by LLD (rustc's default linker on x86_64 Linux since 1.90) lay out
//! Sigil's functions in the order of `contrib/symbol-order.txt` (`bench/symbol-order.sh` makes
//! it): the code a start and an idle server run comes first, packed together. The kernel maps a
//! binary's code a folio at a time, so an idle server then keeps a few folios of code resident
//! instead of two thirds of it. `SIGIL_SYMBOL_ORDER=off` links in the compiler's order.
//! A file made by another rustc than the one building (its header names it) is still used, with
//! a warning: its names' hashes have changed, so it orders little; remake it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn watch(path: PathBuf) {
    // A path that does not exist would make cargo rerun this script on every build.
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The compiler's version, `1.95.0` from `rustc 1.95.0 (59807616e 2026-04-14)`.
fn rustc_version() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// Whether rustc links this target with LLD: its default for x86_64-unknown-linux-gnu since
/// 1.90, unless the flags turn it off (`-C linker-features=-lld`) or name another linker.
fn links_with_lld(rustc: Option<&str>) -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("-lld") || flags.contains("fuse-ld=") || flags.contains("linker-flavor") {
        return flags.contains("fuse-ld=lld");
    }
    let minor = rustc.and_then(|v| v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()));
    minor.is_some_and(|m| m >= 90)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-env-changed=SIGIL_SYMBOL_ORDER");
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let order = root.join("contrib/symbol-order.txt");
    let wanted = std::env::var("SIGIL_SYMBOL_ORDER").map_or(true, |v| v != "off");
    let rustc = rustc_version();
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if wanted && release && links_with_lld(rustc.as_deref()) {
        watch(order.clone());
        if let Ok(text) = std::fs::read_to_string(&order) {
            // A symbol the file names that this build does not have is skipped, silently.
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                order.display()
            );
            println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
            // The names' hashes change with the compiler: a file made by another one orders
            // little or nothing, and an idle server keeps most of its code resident again.
            let header: String = text.lines().take_while(|l| l.starts_with('#')).collect();
            if let Some(v) = rustc.filter(|v| !header.contains(&format!("rustc {v} "))) {
                println!(
                    "cargo:warning=contrib/symbol-order.txt was not made with rustc {v}: \
                     remake it with bench/symbol-order.sh (idle memory, README)"
                );
            }
        }
    }
    println!("cargo:rerun-if-env-changed=SIGIL_COMMIT");
    let commit = match std::env::var("SIGIL_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            let commit = git(&["rev-parse", "--short", "HEAD"]);
            if commit.is_some() {
                let under = |dir: String| {
                    let dir = Path::new(&dir);
                    if dir.is_absolute() {
                        dir.to_path_buf()
                    } else {
                        root.join(dir)
                    }
                };
                if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(under) {
                    watch(dir.join("HEAD"));
                }
                if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(under) {
                    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
                        watch(common.join(head_ref));
                    }
                    watch(common.join("packed-refs"));
                }
            }
            commit.unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=SIGIL_COMMIT={commit}");
}
