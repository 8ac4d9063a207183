//! The agent's configuration file (TOML, parsed strictly: an unknown key
//! is an error naming it).
//!
//! ```toml
//! [broker]                        # else BROKER_ADDR / VAULT_ADDR
//! address = "https://broker.internal:8200"
//! ca_cert = "/etc/agent/ca.pem"
//!
//! [auto_auth]
//! method = "approle"              # approle | jwt | token_file
//! role_id_file = "/etc/agent/role-id"
//! secret_id_file = "/etc/agent/secret-id"   # removed after reading unless
//! # remove_secret_id_file_after_reading = false
//!
//! [[sink]]
//! path = "/run/agent/token"       # the agent's token, mode 0600
//!
//! [[template]]
//! source = "/etc/agent/db.env.tmpl"   # or contents = "…"
//! destination = "/run/app/db.env"     # mode 0600 unless perms says
//! command = "systemctl reload app"    # optional, after a render that changed it
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not parse, or a value is out of place.
    #[error("{0}")]
    Invalid(String),
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where the broker is.
    #[serde(default)]
    pub broker: BrokerSection,
    /// How the agent logs in.
    pub auto_auth: AutoAuth,
    /// Where the agent's token is written.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Sink>,
    /// Files rendered from templates.
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
    /// A child run with secrets in its environment.
    #[serde(default)]
    pub exec: Option<ExecConfig>,
}

/// `[exec]`: the agent runs the application itself, its environment
/// rendered from templates, and restarts it when a value changes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Environment variables, each a template
    /// (`DB_PASSWORD = '{{ secret("database/creds/app").data.password }}'`).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Restart the child when a variable's value changes (default true);
    /// otherwise it keeps the values it started with.
    #[serde(default = "yes")]
    pub restart_on_secret_changes: bool,
}

/// `[broker]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSection {
    /// The broker's address (else `BROKER_ADDR`, `VAULT_ADDR`).
    pub address: Option<String>,
    /// A CA file to trust (else `BROKER_CACERT`, `VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
}

/// `[auto_auth]`, by `method`.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum AutoAuth {
    /// AppRole: the role id and a secret id from files.
    Approle {
        /// Where the method is mounted (default `approle`).
        #[serde(default)]
        mount_path: Option<String>,
        /// The role id's file.
        role_id_file: PathBuf,
        /// The secret id's file (read at the first login).
        secret_id_file: PathBuf,
        /// Remove the secret id's file once read (default true: it is
        /// single-use material no one else should find).
        #[serde(default = "yes")]
        remove_secret_id_file_after_reading: bool,
    },
    /// JWT: a token from a file, read again at every login (a Kubernetes
    /// projected token, a CI job's OIDC token, which their platforms
    /// rotate).
    Jwt {
        /// Where the method is mounted (default `jwt`).
        #[serde(default)]
        mount_path: Option<String>,
        /// The role to log in as.
        role: String,
        /// The JWT's file.
        path: PathBuf,
    },
    /// A TLS client certificate (the `cert` method).
    Cert {
        /// Where the method is mounted (default `cert`).
        #[serde(default)]
        mount_path: Option<String>,
        /// The certificate entry to log in against (default: any that
        /// matches).
        #[serde(default)]
        name: Option<String>,
        /// The client certificate (PEM).
        client_cert: PathBuf,
        /// Its private key (PEM).
        client_key: PathBuf,
    },
    /// A token from a file, as it is (for tests and hand-made setups).
    TokenFile {
        /// The file.
        path: PathBuf,
    },
}

fn yes() -> bool {
    true
}

/// `[[sink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// The file the token is written to (mode 0600).
    pub path: PathBuf,
    /// Write a single-use wrapping token instead, valid this long
    /// (`"5m"`): the reader unwraps it (`sys/wrapping/unwrap`) to get the
    /// token as `data.token`, and a token read twice shows it was seen.
    #[serde(default)]
    pub wrap_ttl: Option<String>,
}

/// `[[template]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The template's file.
    pub source: Option<PathBuf>,
    /// Or the template itself.
    pub contents: Option<String>,
    /// The rendered file.
    pub destination: PathBuf,
    /// Its mode, octal (default "0600").
    #[serde(default)]
    pub perms: Option<String>,
    /// A shell command run after each render that changed the file.
    #[serde(default)]
    pub command: Option<String>,
}

impl TemplateConfig {
    /// The template's text.
    pub fn text(&self) -> Result<String, AgentConfigError> {
        match (&self.source, &self.contents) {
            (Some(path), None) => {
                std::fs::read_to_string(path).map_err(|source| AgentConfigError::Read {
                    path: path.clone(),
                    source,
                })
            }
            (None, Some(text)) => Ok(text.clone()),
            _ => Err(AgentConfigError::Invalid(format!(
                "template for {}: give exactly one of source and contents",
                self.destination.display()
            ))),
        }
    }

    /// The destination's mode.
    pub fn mode(&self) -> Result<u32, AgentConfigError> {
        let text = self.perms.as_deref().unwrap_or("0600");
        u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                AgentConfigError::Invalid(format!(
                    "template for {}: perms {text:?} is not an octal mode such as \"0600\"",
                    self.destination.display()
                ))
            })
    }
}

impl AgentConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, AgentConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<Self, AgentConfigError> {
        let config: Self =
            toml::from_str(text).map_err(|e| AgentConfigError::Invalid(e.to_string()))?;
        if let Some(exec) = &config.exec
            && exec.command.is_empty()
        {
            return Err(AgentConfigError::Invalid(
                "exec.command is empty: give the command and its arguments, e.g. [\"./app\"]"
                    .into(),
            ));
        }
        for template in &config.templates {
            template.mode()?;
            if template.source.is_some() == template.contents.is_some() {
                return Err(AgentConfigError::Invalid(format!(
                    "template for {}: give exactly one of source and contents",
                    template.destination.display()
                )));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_example_parses_and_mistakes_are_named() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let config = AgentConfig::parse(&example).unwrap();
        assert!(matches!(
            config.auto_auth,
            AutoAuth::Approle {
                remove_secret_id_file_after_reading: true,
                ..
            }
        ));
        assert_eq!(config.templates[0].mode().unwrap(), 0o600);
        let typo = example.replace("destination", "destinaton");
        assert!(
            AgentConfig::parse(&typo)
                .unwrap_err()
                .to_string()
                .contains("destinaton")
        );
        let bad = format!("{example}\nperms = \"0999\"");
        assert!(AgentConfig::parse(&bad).is_err());
    }

    /// The TOML examples in `text` that configure an agent.
    fn agent_examples(text: &str) -> Vec<&str> {
        text.split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| b.contains("[auto_auth]"))
            .collect()
    }

    #[test]
    fn the_documented_agent_examples_parse() {
        let readme = agent_examples(include_str!("../../../README.md"));
        let guide = agent_examples(include_str!("../../../docs/ci-cd.md"));
        assert_eq!((readme.len(), guide.len()), (1, 1));
        for example in readme.into_iter().chain(guide) {
            let config = AgentConfig::parse(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
            for template in &config.templates {
                let text = template.text().unwrap();
                let paths = super::super::template::wanted(&text).unwrap();
                assert!(paths.contains("database/creds/app"), "{text}");
            }
        }
    }
}
