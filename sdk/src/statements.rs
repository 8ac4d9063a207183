//! A role's statements, as Vault takes them: one string or a list of
//! strings, each of which may hold several `;`-separated statements.

use serde::{Deserialize, Deserializer, Serialize};

use crate::sql::Dialect;
use crate::template::{Template, TemplateError, Vars};

/// A list of statement templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Statements(pub Vec<String>);

impl<'de> Deserialize<'de> for Statements {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Self(Vec::new()),
            Some(OneOrMany::One(s)) => Self(vec![s]),
            Some(OneOrMany::Many(v)) => Self(v),
        })
        .map(|Self(v)| Self(v.into_iter().filter(|s| !s.trim().is_empty()).collect()))
    }
}

impl Statements {
    /// Whether there are no statements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Renders every statement for `dialect`.
    pub fn render(&self, dialect: Dialect, vars: &Vars) -> Result<Vec<String>, TemplateError> {
        self.0
            .iter()
            .map(|s| Template::new(s).render(dialect, vars))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_many() {
        let one: Statements = serde_json::from_str(r#""CREATE ROLE x""#).unwrap();
        assert_eq!(one.0, vec!["CREATE ROLE x"]);
        let many: Statements = serde_json::from_str(r#"["a", " ", "b"]"#).unwrap();
        assert_eq!(many.0, vec!["a", "b"]);
        let none: Statements = serde_json::from_str("null").unwrap();
        assert!(none.is_empty());
    }
}
