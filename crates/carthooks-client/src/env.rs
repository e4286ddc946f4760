//! The `CARTHOOKS_*` environment variables: how a value is read (trimmed; a
//! blank one is unset) and parsed (seconds, counts, flags; each error names
//! its variable), and the call settings read from them.
//!
//! The sans-IO core reads no environment. [`ClientBuilder::from_env`]
//! reads it here at `build()`: the call settings (`settings::CLIENT_ENV_VARS`)
//! through [`client_config`], the connection settings
//! (`TransportConfig::ENV_VARS`) through `TransportConfig::from_lookup`, which
//! parses with the helpers below. (A leaf module: it names nothing of the
//! settings it serves.)
//!
//! [`ClientBuilder::from_env`]: crate::ClientBuilder::from_env

use std::time::Duration;

use carthooks_core::{AccessToken, BaseUrl, ClientConfig, Error, Result};

/// The call settings: defaults overridden by the variables of
/// `settings::CLIENT_ENV_VARS` that `lookup` finds.
pub(crate) fn client_config(lookup: impl Fn(&str) -> Option<String>) -> Result<ClientConfig> {
    let mut config = ClientConfig::default();
    if let Some(url) = non_empty(lookup("CARTHOOKS_API_URL")) {
        config.base_url = BaseUrl::parse(&url).map_err(|e| e.in_variable("CARTHOOKS_API_URL"))?;
    }
    if let Some(token) = non_empty(lookup("CARTHOOKS_ACCESS_TOKEN")) {
        config.access_token = Some(AccessToken::new(token));
    }
    if let Some(t) = non_empty(lookup("CARTHOOKS_TIMEOUT")) {
        config.timeout = env_seconds("CARTHOOKS_TIMEOUT", &t)?;
    }
    Ok(config)
}

/// A variable's value, trimmed; `None` when unset or blank.
pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Seconds (a decimal number above 0, at most a day); the error names the
/// variable.
pub(crate) fn env_seconds(name: &str, value: &str) -> Result<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{name} must be a number of seconds greater than 0 and at most 86400"
            ))
        })
}

/// An environment flag (`1/0`, `true/false`, `yes/no`, `on/off`); the error
/// names the variable.
pub(crate) fn env_flag(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name} must be true or false (1/0, yes/no, on/off)"
        ))),
    }
}

/// Whole number above zero; the error names the variable.
pub(crate) fn env_count(name: &str, value: &str) -> Result<usize> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Config(format!("{name} must be a whole number above 0")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lookup over `vars`, for tests of what reads the environment.
    pub(crate) fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn call_settings_from_the_environment() {
        let c = client_config(env(&[
            ("CARTHOOKS_API_URL", "http://127.0.0.1:9000"),
            ("CARTHOOKS_TIMEOUT", "2.5"),
            ("CARTHOOKS_ACCESS_TOKEN", "tok-123"),
        ]))
        .unwrap();
        assert_eq!(c.base_url.to_string(), "http://127.0.0.1:9000");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert!(!format!("{c:?}").contains("tok-123"));
        let d = client_config(env(&[])).unwrap();
        assert_eq!(d.base_url, BaseUrl::default());
        assert_eq!(d.timeout, Duration::from_secs(30));
        for bad in ["abc", "-1", "0", "NaN", "inf"] {
            let e = client_config(env(&[("CARTHOOKS_TIMEOUT", bad)])).unwrap_err();
            assert!(e.to_string().contains("CARTHOOKS_TIMEOUT"), "{e}");
        }
        let e = client_config(env(&[("CARTHOOKS_API_URL", "nope")])).unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_API_URL"));
        assert_eq!(
            e.to_string().matches("invalid configuration").count(),
            1,
            "said once: {e}"
        );
        let e = client_config(env(&[("CARTHOOKS_TIMEOUT", "0")])).unwrap_err();
        assert!(e.to_string().contains("greater than 0"), "{e}");
        let e = client_config(env(&[("CARTHOOKS_TIMEOUT", "0.0000000001")])).unwrap_err();
        assert!(e.to_string().contains("CARTHOOKS_TIMEOUT"), "{e}");
        let blank = client_config(env(&[("CARTHOOKS_TIMEOUT", "  ")])).unwrap();
        assert_eq!(blank.timeout, Duration::from_secs(30), "blank is unset");
    }
}
