//! The token helper: where `broker login` keeps the token for the next
//! commands, as Vault's CLI keeps `~/.vault-token`. One file,
//! `~/.broker-token` (or `BROKER_TOKEN_FILE`), mode 0600, holding the
//! token alone.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::ClientError;

/// The token file.
#[derive(Debug, Clone)]
pub struct TokenHelper {
    path: PathBuf,
}

impl TokenHelper {
    /// The helper at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `BROKER_TOKEN_FILE`, else `~/.broker-token`; `None` without a home.
    pub fn default_location() -> Option<Self> {
        if let Some(path) = std::env::var_os("BROKER_TOKEN_FILE").filter(|p| !p.is_empty()) {
            return Some(Self::at(path));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| Self::at(Path::new(&home).join(".broker-token")))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored token, if any. A file others may read is refused: the
    /// token in it may have been seen.
    pub fn get(&self) -> Result<Option<Zeroizing<String>>, ClientError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ClientError::Local(format!(
                    "cannot read the token file {}: {e}",
                    self.path.display()
                )));
            }
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(ClientError::Local(format!(
                "the token file {} may be read by others (mode {:o}); remove it and log in again",
                self.path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let text = Zeroizing::new(std::fs::read_to_string(&self.path).map_err(|e| {
            ClientError::Local(format!(
                "cannot read the token file {}: {e}",
                self.path.display()
            ))
        })?);
        let token = text.trim();
        Ok((!token.is_empty()).then(|| Zeroizing::new(token.to_owned())))
    }

    /// Stores `token`, replacing what was there, in a file only its owner
    /// may read (written beside it, then renamed over it).
    pub fn store(&self, token: &str) -> Result<(), ClientError> {
        let fail = |e: std::io::Error| {
            ClientError::Local(format!(
                "cannot write the token file {}: {e}",
                self.path.display()
            ))
        };
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        file.write_all(token.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, &self.path).map_err(fail)
    }

    /// Removes the stored token.
    pub fn erase(&self) -> Result<(), ClientError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::Local(format!(
                "cannot remove the token file {}: {e}",
                self.path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_kept_private_and_a_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let helper = TokenHelper::at(dir.path().join("token"));
        assert!(helper.get().unwrap().is_none());
        helper.store("brk.secret").unwrap();
        let mode = std::fs::metadata(helper.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            helper.get().unwrap().as_deref().map(String::as_str),
            Some("brk.secret")
        );
        helper.store("brk.other").unwrap();
        assert_eq!(
            helper.get().unwrap().as_deref().map(String::as_str),
            Some("brk.other")
        );
        std::fs::set_permissions(helper.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = helper.get().unwrap_err().to_string();
        assert!(
            e.contains("may be read by others") && !e.contains("brk.other"),
            "{e}"
        );
        helper.erase().unwrap();
        assert!(helper.get().unwrap().is_none());
    }
}
