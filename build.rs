//! How the glibc build links `updraft`: as a non-PIE, as the static musl binary already
//! is (`.cargo/config.toml`), and in release with GNU ld rather than rustc's own `lld`.
//! Both are for its resident memory (`bench/PROFILES.md`, "Idle memory of the glibc
//! build": an idle standalone's VmRSS, 12.7 → 11.0 MB for the first, → 9.9 MB with both).
//! It also links GCC's unwinder statically.
//!
//! - **Non-PIE.** A PIE's pointers to its own code and data are relocated by the dynamic
//!   loader at every start: it reads ~1 MB of relocations (`.rela.dyn`) and writes every
//!   page of `.data.rel.ro` (~1.2 MB of vtables and tables of string and slice pointers),
//!   which makes those pages private copies. A non-PIE has them fixed at link time, so
//!   they stay clean file pages, paged in only where read. What this trades is ASLR for
//!   the executable's own image (stack, heap, mmap regions and shared libraries are still
//!   randomized); `.cargo/config.toml` says why that price is acceptable. `-no-pie` is a
//!   link argument, so the code stays position-independent, and only the `updraft` binary
//!   is linked this way: the flag cannot go in `.cargo/config.toml`, where it would also
//!   reach the host's proc macros.
//! - **GNU ld.** The kernel maps a binary's code in 64 kB windows around each page that is
//!   used, so what an idle process holds depends on how its functions are laid out.
//!   `lld`'s layout of this binary leaves ~0.9 MB more of it resident than GNU ld's
//!   (measured, not derived). Release only: debug builds keep the faster linker.
//!
//! - **The unwinder, static.** Rust's std links glibc builds against `libgcc_s.so.1` for
//!   unwinding (panics caught at the API's handlers, for one). Linking GCC's static
//!   `libgcc_eh.a` first resolves the same functions from the same code inside the binary,
//!   so the linker (`--as-needed`) drops the shared library: ~0.1 MB less resident.
//!
//! Windows keeps its ASLR and its linker; the musl target links with GNU ld already.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo::rustc-link-arg-bins=-no-pie");
        println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
        if var("PROFILE") == "release" {
            println!("cargo::rustc-link-arg-bins=-fuse-ld=bfd");
        }
    }
}
