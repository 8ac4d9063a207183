//! Durations as Vault takes them: `"1h30m"`, `"90s"`, `"3600"` or `3600`.
//!
//! Owns the one range every TTL field shares: from zero ("unset") to
//! [`MAX_TTL`]. Every request field that is a TTL (mount and tune TTLs, role
//! TTLs, a renewal's increment, PKI TTLs) is parsed here, so none can ask
//! for a lease that outlives what time arithmetic and the databases'
//! timestamps can hold. It must never accept a value outside that range,
//! nor panic on any input.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// The longest TTL any field takes: 876000h, 100 years of 365 days. Far
/// beyond Vault's system default (32 days) and the ten-year CA TTLs people
/// set, yet every expiry it yields fits a PostgreSQL timestamp, an X.509
/// date and an `i64` of Unix seconds with room to spare.
pub const MAX_TTL: Duration = Duration::from_secs(MAX_TTL_SECS);

/// [`MAX_TTL`] in seconds.
pub const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// The longest duration text looked at; no valid TTL needs more.
const MAX_TEXT: usize = 64;

/// Why a TTL did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// Not a number of seconds nor a duration like `1h30m`.
    #[error("invalid duration {0:?}: use whole seconds or a form like \"1h30m\"")]
    Invalid(String),
    /// Longer than [`MAX_TTL`].
    #[error("{0}s is longer than the longest TTL this broker takes, 876000h (100 years)")]
    TooLong(u128),
    /// A negative number.
    #[error("a duration cannot be negative")]
    Negative,
    /// Text too long to be a duration.
    #[error("a duration is at most 64 characters")]
    TextTooLong,
}

/// A TTL or increment from a request body, within `0..=MAX_TTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ttl(pub Duration);

impl Ttl {
    /// Parses Vault's duration forms. Whole seconds only; zero means "unset".
    pub fn parse(text: &str) -> Result<Self, TtlError> {
        if text.len() > MAX_TEXT {
            return Err(TtlError::TextTooLong);
        }
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(Duration::ZERO));
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Self::from_secs(secs);
        }
        if text.starts_with('-') {
            return Err(TtlError::Negative);
        }
        match humantime::parse_duration(text) {
            Ok(d) => Self::from_secs_u128(u128::from(d.as_secs())),
            // humantime refuses what overflows its own arithmetic: too long
            // for us too, but only a number says so for certain.
            Err(_) => Err(TtlError::Invalid(text.to_owned())),
        }
    }

    /// `secs` seconds, if within range.
    pub fn from_secs(secs: u64) -> Result<Self, TtlError> {
        Self::from_secs_u128(u128::from(secs))
    }

    fn from_secs_u128(secs: u128) -> Result<Self, TtlError> {
        match u64::try_from(secs) {
            Ok(s) if s <= MAX_TTL_SECS => Ok(Self(Duration::from_secs(s))),
            _ => Err(TtlError::TooLong(secs)),
        }
    }

    /// Seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }

    /// The field `name` of a request body: `None` when absent or null, an
    /// error naming the field when it is not a duration within range.
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

/// `d` in whole seconds as an `i64`, capped at [`MAX_TTL`]: for time
/// arithmetic on values that should already be in range (a stored role
/// written before the range was checked may not be).
pub fn capped_secs(d: Duration) -> i64 {
    // MAX_TTL_SECS is about 3.2e9: it fits an i64.
    i64::try_from(d.as_secs().min(MAX_TTL_SECS)).unwrap_or(0)
}

struct TtlVisitor;

impl serde::de::Visitor<'_> for TtlVisitor {
    type Value = Ttl;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("whole seconds or a duration like \"1h30m\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ttl, E> {
        Ttl::from_secs(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Ttl, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(TtlError::Negative)),
        }
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Ttl, E> {
        Ttl::from_secs_u128(v).map_err(E::custom)
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Ttl, E> {
        match u128::try_from(v) {
            Ok(v) => self.visit_u128(v),
            Err(_) => Err(E::custom(TtlError::Negative)),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Ttl, E> {
        if v < 0.0 {
            return Err(E::custom(TtlError::Negative));
        }
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::custom(TtlError::Invalid(v.to_string())));
        }
        if v > MAX_TTL_SECS as f64 {
            // Saturates: the message needs only to say "too long".
            return Err(E::custom(TtlError::TooLong(v as u128)));
        }
        self.visit_u64(v as u64)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ttl, E> {
        Ttl::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Ttl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TtlVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_TTL_SECS, Ttl, TtlError};
    use proptest::prelude::*;

    #[test]
    fn vault_forms() {
        assert_eq!(Ttl::parse("1h30m").unwrap().secs(), 5400);
        assert_eq!(Ttl::parse("90s").unwrap().secs(), 90);
        assert_eq!(Ttl::parse("3600").unwrap().secs(), 3600);
        assert_eq!(Ttl::parse("876000h").unwrap().secs(), MAX_TTL_SECS);
        assert_eq!(serde_json::from_str::<Ttl>("120").unwrap().secs(), 120);
        assert_eq!(serde_json::from_str::<Ttl>("\"2m\"").unwrap().secs(), 120);
        assert!(Ttl::parse("soon").is_err());
        assert!(serde_json::from_str::<Ttl>("\"-5\"").is_err());
    }

    #[test]
    fn hostile_values_are_refused_with_a_reason() {
        for (text, want) in [
            ("99999999999h", "longer than the longest TTL"),
            ("18446744073709551615", "longer than the longest TTL"),
            ("876001h", "longer than the longest TTL"),
            ("99999999999999999999999h", "invalid duration"),
            ("-5", "negative"),
            ("-1h", "negative"),
            ("1h\u{0}", "invalid duration"),
        ] {
            let e = Ttl::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert_eq!(
            Ttl::parse(&"1".repeat(5000)).unwrap_err(),
            TtlError::TextTooLong
        );
        for json in [
            "18446744073709551615",
            "-1",
            "1.5",
            "1e300",
            "-1e300",
            "340282366920938463463374607431768211455",
            "true",
            "[]",
        ] {
            assert!(serde_json::from_str::<Ttl>(json).is_err(), "{json}");
        }
        let mut body = serde_json::Map::new();
        body.insert("max_ttl".into(), serde_json::json!("99999999999h"));
        let e = Ttl::field(&body, "max_ttl").unwrap_err();
        assert!(e.starts_with("max_ttl: "), "{e}");
    }

    proptest! {
        /// Any number of seconds is taken exactly when it is in range, in
        /// JSON as a number or as text.
        #[test]
        fn seconds_in_range_iff_accepted(secs in any::<u64>()) {
            let as_number = serde_json::from_value::<Ttl>(serde_json::json!(secs));
            let as_text = Ttl::parse(&secs.to_string());
            if secs <= MAX_TTL_SECS {
                prop_assert_eq!(as_number.unwrap().secs(), secs);
                prop_assert_eq!(as_text.unwrap().secs(), secs);
            } else {
                prop_assert!(as_number.is_err());
                prop_assert_eq!(as_text.unwrap_err(), TtlError::TooLong(u128::from(secs)));
            }
        }

        /// Hours, minutes and days compose, and the bound holds for each.
        #[test]
        fn units_respect_the_bound(n in 0u64..10_000_000_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86400)])) {
            let text = format!("{n}{}", unit.0);
            let want = u128::from(n) * u128::from(unit.1);
            match Ttl::parse(&text) {
                Ok(t) => {
                    prop_assert!(want <= u128::from(MAX_TTL_SECS));
                    prop_assert_eq!(u128::from(t.secs()), want);
                }
                Err(_) => prop_assert!(want > u128::from(MAX_TTL_SECS)),
            }
        }

        /// No text makes the parser panic, and nothing it accepts is out of range.
        #[test]
        fn any_text_is_bounded_or_refused(text in ".{0,80}") {
            if let Ok(t) = Ttl::parse(&text) {
                prop_assert!(t.secs() <= MAX_TTL_SECS);
            }
        }
    }
}
