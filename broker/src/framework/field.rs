//! A path's fields: their type, default, description, and what the audit
//! log and error messages may show of them.
//!
//! Types accept the forms Vault's clients send: a number or its text for an
//! integer, `"true"` for a boolean, seconds or `"1h30m"` for a duration, a
//! list or comma-separated text for a string list. A value of the wrong
//! type is refused with the field's name and what it should be, never the
//! value itself (it may be a secret).

use serde_json::{Map, Value};

use super::Error;

/// A field's type, as OpenAPI and `?help=1` show it and as a request's
/// value is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// A whole number (or its text).
    Int,
    /// `true` or `false` (or their text).
    Bool,
    /// Seconds, or text such as `"1h30m"`.
    Duration,
    /// A duration that may be negative (`-1`, `"-1s"`): Vault's signed
    /// durations, where a negative value turns a setting off.
    SignedDuration,
    /// A list of strings, or one comma-separated string.
    CommaStringList,
    /// A list of strings, or one string.
    StringList,
    /// A list of whole numbers (or their text), or one comma-separated
    /// string of them, or one number.
    CommaIntList,
    /// A JSON object.
    Object,
}

impl FieldType {
    /// The OpenAPI schema of a value of this type.
    pub fn schema(self) -> Value {
        match self {
            Self::String => serde_json::json!({ "type": "string" }),
            Self::Int => serde_json::json!({ "type": "integer" }),
            Self::Bool => serde_json::json!({ "type": "boolean" }),
            Self::Duration | Self::SignedDuration => {
                serde_json::json!({ "type": "string", "format": "duration" })
            }
            Self::CommaStringList | Self::StringList => {
                serde_json::json!({ "type": "array", "items": { "type": "string" } })
            }
            Self::CommaIntList => {
                serde_json::json!({ "type": "array", "items": { "type": "integer" } })
            }
            Self::Object => serde_json::json!({ "type": "object" }),
        }
    }

    /// What a value of this type is, as `?help=1` and errors say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Int => "a whole number",
            Self::Bool => "true or false",
            Self::Duration => "a duration (seconds, or text such as \"1h30m\")",
            Self::SignedDuration => {
                "a duration, negative to turn it off (seconds, or text such as \"1h30m\" or \"-1s\")"
            }
            Self::CommaStringList => "a list of strings (or one comma-separated string)",
            Self::StringList => "a list of strings (or one string)",
            Self::CommaIntList => "a list of whole numbers (or one comma-separated string of them)",
            Self::Object => "an object",
        }
    }

    /// Whether `value` is of this type, in any form Vault accepts. `null`
    /// is always accepted: it means "not given".
    pub fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Self::String, Value::String(_)) => true,
            (Self::Int, Value::Number(n)) => n.as_i64().is_some() || n.as_u64().is_some(),
            (Self::Int, Value::String(s)) => s.trim().parse::<i64>().is_ok(),
            (Self::Bool, Value::Bool(_)) => true,
            (Self::Bool, Value::String(s)) => matches!(s.as_str(), "true" | "false"),
            (Self::Duration, Value::Number(n)) => n.as_u64().is_some(),
            (Self::Duration | Self::SignedDuration, Value::String(_)) => true,
            (Self::SignedDuration, Value::Number(n)) => n.as_i64().is_some(),
            (Self::CommaIntList, Value::Number(n)) => n.as_u64().is_some(),
            (Self::CommaIntList, Value::String(_)) => true,
            (Self::CommaIntList, Value::Array(items)) => items.iter().all(|v| match v {
                Value::Number(n) => n.as_u64().is_some(),
                Value::String(_) => true,
                _ => false,
            }),
            (Self::CommaStringList | Self::StringList, Value::String(_)) => true,
            (Self::CommaStringList | Self::StringList, Value::Array(items)) => {
                items.iter().all(Value::is_string)
            }
            (Self::Object, Value::Object(_)) => true,
            _ => false,
        }
    }
}

/// How the audit log writes a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditAs {
    /// HMAC'd with the device's salt (the default: a value may be a secret).
    #[default]
    Hmac,
    /// In clear, bounded in size: a name an operator needs to follow a lease.
    Clear,
}

/// A field a path takes in its request body.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its name in the body.
    pub name: &'static str,
    /// Its type.
    pub kind: FieldType,
    /// What it means, for `?help=1` and OpenAPI.
    pub description: &'static str,
    /// Its value when not given, as documented.
    pub default: Option<Value>,
    /// How the audit log writes it.
    pub audit: AuditAs,
    /// A secret: write only, never echoed, never named with its value.
    pub sensitive: bool,
    /// Must be given.
    pub required: bool,
}

impl Field {
    fn new(name: &'static str, kind: FieldType, description: &'static str) -> Self {
        Self {
            name,
            kind,
            description,
            default: None,
            audit: AuditAs::Hmac,
            sensitive: false,
            required: false,
        }
    }

    /// A text field.
    pub fn string(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::String, description)
    }

    /// A whole-number field.
    pub fn int(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::Int, description)
    }

    /// A boolean field.
    pub fn bool(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::Bool, description)
    }

    /// A duration field (seconds or `"1h30m"`).
    pub fn duration(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::Duration, description)
    }

    /// A list of strings that may also come comma-separated.
    pub fn comma_list(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::CommaStringList, description)
    }

    /// A list of strings that may also come as one string.
    pub fn string_list(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::StringList, description)
    }

    /// A duration field that may be negative (a negative value turns the
    /// setting off).
    pub fn signed_duration(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::SignedDuration, description)
    }

    /// A list of whole numbers that may also come comma-separated.
    pub fn comma_int_list(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::CommaIntList, description)
    }

    /// An object field.
    pub fn object(name: &'static str, description: &'static str) -> Self {
        Self::new(name, FieldType::Object, description)
    }

    /// Documents its default.
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Logged in clear (a name, a TTL), not HMAC'd.
    pub fn clear(mut self) -> Self {
        self.audit = AuditAs::Clear;
        self
    }

    /// A secret: never echoed, never quoted in an error.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Must be given.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// Checks a request body against a path's fields: each declared field
/// that is present must have its type, and each required one must be
/// there. Fields the path does not declare pass (Vault ignores them too,
/// and engines pass some through to plugins). The error names the field,
/// never its value.
pub(crate) fn check(fields: &[Field], body: &Map<String, Value>) -> Result<(), Error> {
    for field in fields {
        match body.get(field.name) {
            Some(v) if !field.kind.accepts(v) => {
                return Err(Error::field(
                    field.name,
                    format!("{} must be {}", field.name, field.kind.name()),
                ));
            }
            None | Some(Value::Null) if field.required => {
                return Err(Error::field(
                    field.name,
                    format!("{} is required", field.name),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn vaults_forms_are_accepted() {
        assert!(FieldType::Int.accepts(&json!("4")));
        assert!(FieldType::Bool.accepts(&json!("true")));
        assert!(FieldType::Duration.accepts(&json!("1h")));
        assert!(FieldType::Duration.accepts(&json!(60)));
        assert!(FieldType::CommaStringList.accepts(&json!("a,b")));
        assert!(FieldType::CommaStringList.accepts(&json!(["a", "b"])));
        assert!(!FieldType::CommaStringList.accepts(&json!([1])));
        assert!(!FieldType::Bool.accepts(&json!("yes")));
        assert!(!FieldType::Int.accepts(&json!(1.5)));
        assert!(!FieldType::String.accepts(&json!({})));
        assert!(FieldType::SignedDuration.accepts(&json!(-1)));
        assert!(FieldType::SignedDuration.accepts(&json!("-1s")));
        assert!(!FieldType::Duration.accepts(&json!(-1)));
        assert!(FieldType::CommaIntList.accepts(&json!([1, "2"])));
        assert!(FieldType::CommaIntList.accepts(&json!("1,2")));
        assert!(FieldType::CommaIntList.accepts(&json!(3)));
        assert!(!FieldType::CommaIntList.accepts(&json!([-1])));
        assert!(!FieldType::CommaIntList.accepts(&json!([[1]])));
    }

    #[test]
    fn a_wrong_type_names_the_field_not_the_value() {
        let fields = [Field::string("password", "").sensitive()];
        let body = json!({ "password": ["hunter2"] });
        let e = check(&fields, body.as_object().unwrap()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("password"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(e.field_name(), Some("password"));
    }

    proptest! {
        /// Checking never panics and never quotes the value.
        #[test]
        fn checking_never_echoes(value in "[a-z]{6,12}", kind in 0usize..9) {
            let kinds = [FieldType::String, FieldType::Int, FieldType::Bool, FieldType::Duration,
                FieldType::CommaStringList, FieldType::StringList, FieldType::Object,
                FieldType::SignedDuration, FieldType::CommaIntList];
            let mut field = Field::string("f", "");
            field.kind = kinds[kind];
            for v in [json!(value), json!([value]), json!({ "k": value }), json!(7)] {
                let body = json!({ "f": v });
                if let Err(e) = check(std::slice::from_ref(&field), body.as_object().unwrap()) {
                    prop_assert!(!e.to_string().contains(&value));
                }
            }
        }
    }
}
