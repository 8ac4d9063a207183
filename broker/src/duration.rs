//! Durations as Vault takes them: `"1h30m"`, `"90s"`, `"3600"` or `3600`.

use std::time::Duration;

use serde::Deserialize;

/// A TTL or increment from a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ttl(pub Duration);

impl Ttl {
    /// Parses Vault's duration forms. Whole seconds only; zero means "unset".
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(Duration::ZERO));
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        humantime::parse_duration(text)
            .map(|d| Self(Duration::from_secs(d.as_secs())))
            .map_err(|_| format!("invalid duration {text:?}: use seconds or a form like \"1h30m\""))
    }

    /// Seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// The field `name` of a request body: `None` when absent or null, an
    /// error naming the field when it is not a duration.
    pub fn field(
        body: &serde_json::Map<String, serde_json::Value>,
        name: &str,
    ) -> Result<Option<Self>, String> {
        match body.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Self::deserialize(v)
                .map(Some)
                .map_err(|e| format!("{name}: {e}")),
        }
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ttl;

    #[test]
    fn vault_forms() {
        assert_eq!(Ttl::parse("1h30m").unwrap().secs(), 5400);
        assert_eq!(Ttl::parse("90s").unwrap().secs(), 90);
        assert_eq!(Ttl::parse("3600").unwrap().secs(), 3600);
        assert_eq!(serde_json::from_str::<Ttl>("120").unwrap().secs(), 120);
        assert_eq!(serde_json::from_str::<Ttl>("\"2m\"").unwrap().secs(), 120);
        assert!(Ttl::parse("soon").is_err());
        assert!(serde_json::from_str::<Ttl>("\"-5\"").is_err());
    }
}
