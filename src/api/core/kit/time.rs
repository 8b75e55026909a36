//! Times as Airflow's API reads and writes them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// A time as Airflow's REST models write it: `2024-01-01T00:00:00.123456Z`, without the
/// fraction when it is zero.
pub fn dt(t: Option<DateTime<Utc>>) -> Value {
    match t {
        None => Value::Null,
        Some(t) if t.timestamp_subsec_micros() == 0 => {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
        }
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    }
}

/// An ISO 8601 time as clients send it; a time without an offset is UTC.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Python's `timedelta` as Airflow's API writes it: `{"__type": "TimeDelta", ...}`,
/// normalised like Python (days may be negative, seconds and microseconds never are).
pub fn timedelta_json(secs: f64) -> Value {
    let (days, seconds, micros) = timedelta_parts(secs);
    json!({"__type": "TimeDelta", "days": days, "seconds": seconds, "microseconds": micros})
}

fn timedelta_parts(secs: f64) -> (i64, i64, i64) {
    let total = (secs * 1e6).round() as i64;
    let day = 86_400_000_000;
    let days = total.div_euclid(day);
    let rest = total.rem_euclid(day);
    (days, rest / 1_000_000, rest % 1_000_000)
}

/// A duration in ISO 8601 as pydantic writes a `timedelta`: `PT1H`, `P1DT2H`,
/// `PT1.25S`, `P1Y35D` (a year is 365 days; no months), `-PT30S`, `PT0S`.
pub fn iso_duration(secs: f64) -> String {
    let total = (secs * 1e6).round() as i64;
    let sign = if total < 0 { "-" } else { "" };
    let total = total.unsigned_abs();
    let mut days = total / 86_400_000_000;
    let rest = total % 86_400_000_000;
    let (secs, micros) = (rest / 1_000_000, rest % 1_000_000);
    let mut out = format!("{sign}P");
    if days >= 365 {
        out.push_str(&format!("{}Y", days / 365));
        days %= 365;
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest != 0 {
        out.push('T');
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        if h != 0 {
            out.push_str(&format!("{h}H"));
        }
        if m != 0 {
            out.push_str(&format!("{m}M"));
        }
        if s != 0 || micros != 0 {
            let frac = format!("{micros:06}");
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                out.push_str(&format!("{s}S"));
            } else {
                out.push_str(&format!("{s}.{frac}S"));
            }
        }
    } else if total == 0 {
        out.push_str("T0S");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_airflow_format() {
        let t = parse_datetime("2024-01-01T00:00:00+00:00");
        assert_eq!(dt(t), json!("2024-01-01T00:00:00Z"));
        let t = parse_datetime("2026-11-21T08:56:37.186058+00:00");
        assert_eq!(dt(t), json!("2026-11-21T08:56:37.186058Z"));
        assert_eq!(dt(None), Value::Null);
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn durations_as_pydantic_writes_them() {
        // Expected strings are pydantic 2.13's `TypeAdapter(timedelta).dump_json`.
        let cases = [
            (0.0, "PT0S"),
            (3600.0, "PT1H"),
            (90.0, "PT1M30S"),
            (86_400.0 + 3.5, "P1DT3.5S"),
            (400.0 * 86_400.0, "P1Y35D"),
            (45.0 * 86_400.0, "P45D"),
            (3661.25, "PT1H1M1.25S"),
            (0.000_005, "PT0.000005S"),
            (-30.0, "-PT30S"),
        ];
        for (secs, want) in cases {
            assert_eq!(iso_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn timedeltas_normalise_like_python() {
        assert_eq!(timedelta_parts(300.0), (0, 300, 0));
        assert_eq!(timedelta_parts(86_401.5), (1, 1, 500_000));
        assert_eq!(timedelta_parts(-1.0), (-1, 86_399, 0));
    }
}
