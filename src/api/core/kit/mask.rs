//! Secret masking as Airflow's `secrets_masker` does it: which keys are secret, and a JSON
//! value with their values replaced by `***`.

use serde_json::{Value, json};

/// Words that make a key's value secret: Airflow 3.3.2's `DEFAULT_SENSITIVE_FIELDS`.
const SENSITIVE: &[&str] = &[
    "access_key",
    "access_token",
    "api_key",
    "apikey",
    "auth_header",
    "authorization",
    "bearer",
    "connection_string",
    "dsn",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "proxy",
    "proxy_password",
    "proxies",
    "secret",
    "service_account",
    "service_key",
    "token",
    "keyfile_dict",
    "webhook_url",
];

/// Whether a variable or field name looks secret: lowercased, with each run of
/// characters other than letters, digits and `_` read as one `_` (so `api-key` and
/// `API Key` are `api_key`), it contains one of [`SENSITIVE`], as Airflow decides.
pub fn is_sensitive(key: &str) -> bool {
    let mut k = String::with_capacity(key.len());
    let mut in_run = false;
    for c in key.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' {
            k.push(c);
            in_run = false;
        } else if !in_run {
            k.push('_');
            in_run = true;
        }
    }
    SENSITIVE.iter().any(|s| k.contains(s))
}

/// A copy with the values of secret-looking keys replaced by `***`, at any depth. A
/// variable body (`{"key": "db_password", "value": ...}`) masks its value too.
pub fn mask(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let secret_var = m
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(is_sensitive);
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let hide = is_sensitive(k) || (secret_var && k == "value");
                        (
                            k.clone(),
                            if hide && !v.is_null() {
                                json!("***")
                            } else {
                                mask(v)
                            },
                        )
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(mask).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_keys_at_any_depth() {
        let v = json!({"password": "p", "login": "u", "extra": {"api_key": "k", "n": 1}, "key": "db_token", "value": "s"});
        assert_eq!(
            mask(&v),
            json!({"password": "***", "login": "u", "extra": {"api_key": "***", "n": 1}, "key": "db_token", "value": "***"})
        );
    }

    #[test]
    fn sensitive_names_as_airflow_reads_them() {
        assert!(is_sensitive("db_password"));
        assert!(is_sensitive("API Key"));
        assert!(is_sensitive("my-api-key"));
        assert!(is_sensitive("SLACK_WEBHOOK_URL"));
        assert!(!is_sensitive("timeout"));
        assert!(!is_sensitive("sample_var"));
    }
}
