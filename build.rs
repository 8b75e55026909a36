//! Links the glibc build of `updraft` as a non-PIE executable, as the static musl binary
//! already is (`.cargo/config.toml`).
//!
//! A PIE's pointers to its own code and data are relocated by the dynamic loader at every
//! start: the loader reads ~1 MB of relocations (`.rela.dyn`) and writes every page of
//! `.data.rel.ro` (~1.2 MB of vtables and tables of string and slice pointers), which
//! makes those pages private copies. A non-PIE has those addresses fixed at link time, so
//! its tables stay clean file pages, paged in only where read. Measured on an idle
//! standalone: VmRSS 12.9 → 10.8 MB (RssAnon 3.7 → 2.3 MB) with SQLite's bulk page-cache
//! allocation off as well (`bench/PROFILES.md`, "Idle memory of the glibc build").
//!
//! What this trades is ASLR for the executable's own image (stack, heap, mmap regions and
//! shared libraries are still randomized); see `.cargo/config.toml` for why that is an
//! acceptable price here. Only the `updraft` binary is linked this way: `-no-pie` is a
//! link argument, so the code stays position-independent and the test harnesses,
//! examples, build scripts and proc macros are untouched. Windows keeps its ASLR.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
