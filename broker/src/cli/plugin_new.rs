//! `broker plugin new NAME`: a plugin crate that builds to a component and
//! passes its own tests on the first run, from the templates beside this
//! file. It must never overwrite a directory that exists.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const CARGO_TOML: &str = include_str!("plugin_template/Cargo.toml.tmpl");
const CARGO_CONFIG: &str = include_str!("plugin_template/config.toml.tmpl");
const LIB_RS: &str = include_str!("plugin_template/lib.rs.tmpl");
const HARNESS_RS: &str = include_str!("plugin_template/harness.rs.tmpl");
const README: &str = include_str!("plugin_template/README.md.tmpl");
const GITIGNORE: &str = include_str!("plugin_template/gitignore.tmpl");

/// Where this broker was built from: its SDK is `sdk/` beside `broker/`.
fn built_from() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A crate name: lower-case ASCII letters, digits and `-`, starting with
/// a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "{name:?} cannot be a plugin's name: use lower-case letters, digits and '-', starting with a letter (e.g. my-plugin)"
        );
    }
    Ok(())
}

/// `hello-plugin` → `HelloPlugin`.
fn type_name(name: &str) -> String {
    name.split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// The files of a new plugin crate named `name`, by relative path.
pub fn files(name: &str, sdk: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    check_name(name)?;
    let testkit = sdk.join("testkit");
    let fill = |t: &str| {
        t.replace("__NAME__", name)
            .replace("__CRATE__", &name.replace('-', "_"))
            .replace("__TYPE__", &type_name(name))
            .replace("__SDK__", &sdk.display().to_string())
            .replace("__TESTKIT__", &testkit.display().to_string())
    };
    Ok(vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        (".cargo/config.toml", fill(CARGO_CONFIG)),
        (".gitignore", fill(GITIGNORE)),
        ("src/lib.rs", fill(LIB_RS)),
        ("tests/harness.rs", fill(HARNESS_RS)),
        ("README.md", fill(README)),
    ])
}

/// Creates the crate in `parent/name`.
pub fn create(name: &str, parent: &Path, sdk: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let sdk = match sdk {
        Some(p) => p,
        None => built_from().join("sdk"),
    };
    let sdk = std::fs::canonicalize(&sdk).with_context(|| {
        format!(
            "the plugin SDK is not at {}: pass --sdk PATH (the sdk/ folder of the broker's source)",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} is not the plugin SDK (no Cargo.toml): pass --sdk PATH (the sdk/ folder of the broker's source)",
            sdk.display()
        );
    }
    let files = files(name, &sdk)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} exists already; choose another name or --path",
            dir.display()
        );
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_crates_and_types() {
        assert_eq!(type_name("hello-plugin"), "HelloPlugin");
        assert_eq!(type_name("x"), "X");
        for bad in ["", "Hello", "1abc", "a_b", "a b", "a/b", "-a", "a-", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("my-plugin2").unwrap();
    }

    #[test]
    fn every_placeholder_is_filled() {
        for (path, text) in files("hello-plugin", Path::new("/sdk")).unwrap() {
            assert!(!text.contains("__"), "{path} keeps a placeholder");
        }
    }
}
