//! Times as Airflow's API reads and writes them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_in_airflow_format() {
        let t = parse_datetime("2024-01-01T00:00:00+00:00");
        assert_eq!(dt(t), json!("2024-01-01T00:00:00Z"));
        let t = parse_datetime("2026-11-21T08:56:37.186058+00:00");
        assert_eq!(dt(t), json!("2026-11-21T08:56:37.186058Z"));
        assert_eq!(dt(None), Value::Null);
        assert!(parse_datetime("yesterday").is_none());
    }
}
