//! The two C math functions the glibc build calls, from the `libm` crate: `pow` (for
//! `f64::powf`, which the template engine's `**` uses) and `log` (SQLite's FTS5 ranking,
//! `bm25`). Defined in the binary, every call to them links here, so the process does
//! not load glibc's `libm.so.6` for them: an idle standalone mapped 0.33 MB of it
//! (bench/PROFILES.md, "Idle memory of the glibc build").
//!
//! The static musl binary takes musl's own, as before, and Windows its C runtime's. The
//! `libm` crate's are fdlibm's algorithms (by way of FreeBSD and older musl), within an
//! ulp as glibc's are, and give IEEE's answers for the special cases. Neither sets
//! `errno`, which no caller here reads.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod exported {
    // SAFETY (both): the C declarations are `double pow(double, double)` and
    // `double log(double)`; these have that signature and ABI, take no pointers and
    // touch no memory, so any caller in the process may call them as it would libm's.

    /// C's `pow`.
    #[unsafe(no_mangle)]
    pub extern "C" fn pow(x: f64, y: f64) -> f64 {
        libm::pow(x, y)
    }

    /// C's `log`.
    #[unsafe(no_mangle)]
    pub extern "C" fn log(x: f64) -> f64 {
        libm::log(x)
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// Rust's `powf` and `ln` lower to calls of C's `pow` and `log`, which this process
    /// takes from here: the answers are IEEE's where it defines them, and within an ulp
    /// of the exact value elsewhere.
    #[test]
    fn pow_and_log_answer_as_cs_do() {
        assert_eq!(2f64.powf(10.0), 1024.0);
        assert_eq!(2f64.powf(0.5), 2f64.sqrt());
        assert_eq!(10f64.powf(-2.0), 0.01);
        assert_eq!(f64::NAN.powf(0.0), 1.0);
        assert_eq!(1f64.powf(f64::NAN), 1.0);
        assert!((-8f64).powf(1.0 / 3.0).is_nan());
        assert_eq!(0f64.powf(-1.0), f64::INFINITY);
        assert_eq!(1f64.ln(), 0.0);
        assert_eq!(std::f64::consts::E.ln(), 1.0);
        assert_eq!(0f64.ln(), f64::NEG_INFINITY);
        assert!((-1f64).ln().is_nan());
        // The values are Python's `3 ** 0.7` and `math.log(1234.5)`, on glibc.
        let ulp = |a: f64, b: f64| (a.to_bits() as i64 - b.to_bits() as i64).abs();
        assert!(ulp(3f64.powf(0.7), 2.157_669_279_974_593) <= 1);
        assert!(ulp(1234.5f64.ln(), 7.118_421_308_785_234) <= 1);
    }
}
