//! Templates: text with `secret("PATH")` calls, rendered with the answers
//! read at those paths (Jinja syntax through minijinja, close to
//! consul-template's):
//!
//! ```text
//! {% with db = secret("database/creds/app") %}
//! DB_USER={{ db.data.username }}
//! DB_PASSWORD={{ db.Data.password }}
//! {% endwith %}
//! ```
//!
//! A template is rendered twice: once to learn which paths it reads, then
//! with their answers. It never reads anything itself, and a rendered file
//! is written only when its text changed (so a reader's mtime, and a
//! command run after a render, mean a real change).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Why a template did not render.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template's syntax or a call in it (the engine's message; never
    /// a secret's value).
    #[error("template: {0}")]
    Render(String),
    /// The rendered file cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The paths `text` reads with `secret(…)`.
pub fn wanted(text: &str) -> Result<BTreeSet<String>, TemplateError> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let mut env = minijinja::Environment::new();
    // Nothing is read yet: every field of every answer is undefined.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    {
        let seen = seen.clone();
        env.add_function("secret", move |path: String| {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(path);
            minijinja::Value::from_serialize(serde_json::json!({}))
        });
    }
    env.render_str(text, ())
        .map_err(|e| TemplateError::Render(e.to_string()))?;
    let paths = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(paths)
}

/// `text` rendered with `secrets` (answers by path). Each answer is given
/// as the API returned it, with `Data` beside `data` for templates written
/// for consul-template.
pub fn render(text: &str, secrets: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
    let secrets = Arc::new(secrets.clone());
    let mut env = minijinja::Environment::new();
    // A field the answer lacks is an error, not an empty password.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_function("secret", move |path: String| {
        let Some(answer) = secrets.get(&path) else {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("secret {path:?} was not read"),
            ));
        };
        let mut answer = answer.clone();
        if let Some(object) = answer.as_object_mut()
            && let Some(data) = object.get("data").cloned()
        {
            object.insert("Data".into(), data);
        }
        Ok(minijinja::Value::from_serialize(answer))
    });
    env.render_str(text, ())
        .map_err(|e| TemplateError::Render(e.to_string()))
}

/// Writes `text` to `path` with `mode` unless the file already holds
/// exactly that with that mode; whether it wrote. The new file is written
/// beside it and renamed over it, so a reader never sees half of it.
pub fn write_if_changed(path: &Path, text: &str, mode: u32) -> Result<bool, TemplateError> {
    let fail = |source| TemplateError::Write {
        path: path.display().to_string(),
        source,
    };
    if let (Ok(current), Ok(meta)) = (std::fs::read(path), std::fs::metadata(path))
        && current == text.as_bytes()
        && meta.permissions().mode() & 0o777 == mode
    {
        return Ok(false);
    }
    let tmp = path.with_extension(format!("agent-tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    // The umask may have narrowed the mode at creation.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEMPLATE: &str = "{% with db = secret(\"database/creds/app\") %}user={{ db.data.username }} pass={{ db.Data.password }}{% endwith %} ca={{ secret(\"pki/cert/ca\").data.certificate }}";

    #[test]
    fn a_template_names_what_it_reads_and_renders_with_it() {
        let paths = wanted(TEMPLATE).unwrap();
        assert_eq!(
            paths.into_iter().collect::<Vec<_>>(),
            ["database/creds/app", "pki/cert/ca"]
        );
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "database/creds/app".to_owned(),
            json!({"lease_id": "x", "data": {"username": "u", "password": "p"}}),
        );
        secrets.insert(
            "pki/cert/ca".to_owned(),
            json!({"data": {"certificate": "PEM"}}),
        );
        assert_eq!(render(TEMPLATE, &secrets).unwrap(), "user=u pass=p ca=PEM");
        secrets.remove("pki/cert/ca");
        let e = render(TEMPLATE, &secrets).unwrap_err().to_string();
        assert!(e.contains("pki/cert/ca") && !e.contains("user=u"), "{e}");
        assert!(wanted("{{ unclosed").is_err());
        let typo = TEMPLATE.replace("db.data.username", "db.data.usernme");
        secrets.insert(
            "pki/cert/ca".to_owned(),
            json!({"data": {"certificate": "PEM"}}),
        );
        assert!(
            render(&typo, &secrets).is_err(),
            "a missing field fails the render"
        );
    }

    #[test]
    fn a_file_is_written_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.env");
        assert!(write_if_changed(&path, "a=1\n", 0o600).unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_if_changed(&path, "a=1\n", 0o600).unwrap());
        assert!(write_if_changed(&path, "a=2\n", 0o600).unwrap());
        assert!(
            write_if_changed(&path, "a=2\n", 0o640).unwrap(),
            "a new mode is a change"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a=2\n");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a template says, learning its paths and rendering it
        /// answer (an error at worst) and never panic.
        #[test]
        fn any_template_renders_or_fails_cleanly(text in ".{0,200}", path in "[a-z/]{0,20}") {
            let _ = wanted(&text);
            let mut secrets = BTreeMap::new();
            secrets.insert(path, serde_json::json!({"data": {"k": "v"}}));
            let _ = render(&text, &secrets);
        }

        #[test]
        fn secret_calls_are_found(paths in proptest::collection::btree_set("[a-z]{1,8}/[a-z]{1,8}", 0..5)) {
            let text: String = paths.iter().map(|p| format!("{{{{ secret(\"{p}\").data.x }}}}")).collect();
            prop_assert_eq!(wanted(&text).unwrap(), paths);
        }
    }
}
