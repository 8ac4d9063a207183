//! The HSM connection: a PKCS#11 library, one token in it, logged in with
//! the user PIN, and the sessions that the `pkcs11` seal and HSM-held CA
//! keys borrow for each operation.
//!
//! It must never log, display or return the PIN, and never create or read
//! key material that can leave the token: the callers make keys with
//! `CKA_SENSITIVE` true and `CKA_EXTRACTABLE` false and only ask the token
//! to use them.
//!
//! ```text
//! let hsm = Hsm::connect(&settings)?;          // blocking: load, find token, log in
//! hsm.run("signing", |hsm, s| …).await?;       // a pooled session, on a blocking thread
//! ```
//!
//! A PKCS#11 library is a process-wide C object: `C_Initialize` may run
//! once per process, and a token's login state is shared by all of the
//! process's sessions on it (PKCS#11 v2.40, §5.6). So each library is
//! loaded once ([`library`]) and shared by every [`Hsm`] on it, and an
//! `Hsm` keeps the sessions it opened (at least one stays open, which keeps
//! the login).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::Deserialize;
use zeroize::Zeroizing;

/// The environment variable a PIN is read from when the configuration
/// file gives none, so that it need not sit in the file.
pub const PIN_ENV: &str = "BROKER_PKCS11_PIN";

/// Sessions kept open for reuse; more are opened under load and closed
/// after.
const POOLED_SESSIONS: usize = 8;

/// A token's user PIN. `Debug` never shows it; it is zeroized on drop.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A PIN from text.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(Zeroizing::new(pin.into()))
    }

    /// The PIN from [`PIN_ENV`], if set and not empty.
    pub fn from_env() -> Option<Self> {
        std::env::var(PIN_ENV)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Self::new)
    }
}

/// Whether two PINs are equal, taking as long whatever their first
/// difference.
fn same_pin(a: &Pin, b: &Pin) -> bool {
    let (a, b) = (a.0.as_bytes(), b.0.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(redacted)")
    }
}

/// Where the HSM is: `[hsm]` in the configuration file (for CA keys), and
/// the connection half of `[seal] type = "pkcs11"`.
///
/// ```toml
/// [hsm]
/// lib = "/usr/lib/softhsm/libsofthsm2.so"
/// token_label = "broker"        # or: slot = 0
/// # pin = "…"                   # else $BROKER_PKCS11_PIN
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmSettings {
    /// The PKCS#11 library (a `.so` path).
    pub lib: PathBuf,
    /// The token, by its label.
    #[serde(default)]
    pub token_label: Option<String>,
    /// The token, by slot id (when no label is given).
    #[serde(default)]
    pub slot: Option<u64>,
    /// The user PIN; absent, [`PIN_ENV`] is read when connecting.
    #[serde(default)]
    pub pin: Option<Pin>,
}

impl HsmSettings {
    /// Checks what parsing cannot: exactly one of `token_label` and `slot`.
    pub fn check(&self) -> Result<(), String> {
        match (&self.token_label, self.slot) {
            (Some(_), Some(_)) => Err("give token_label or slot, not both".into()),
            (None, None) => Err("give the token: token_label (or slot)".into()),
            (Some(l), None) if l.is_empty() || l.len() > 32 => {
                Err("token_label must be 1 to 32 bytes (PKCS#11's bound)".into())
            }
            _ => Ok(()),
        }
    }

    /// How the token is named in messages.
    fn token_name(&self) -> String {
        match (&self.token_label, self.slot) {
            (Some(label), _) => format!("'{label}'"),
            (None, Some(slot)) => format!("in slot {slot}"),
            (None, None) => "(none given)".into(),
        }
    }
}

/// Why the HSM could not be used. Never carries the PIN or key material.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The settings are incomplete or contradict each other.
    #[error("{0}")]
    Settings(String),
    /// The library could not be loaded or initialised.
    #[error("cannot load {}: {cause}", .lib.display())]
    Load {
        /// The library's path.
        lib: PathBuf,
        /// Why.
        cause: String,
    },
    /// No token matches the settings.
    #[error("no token {token} in {}{}", .lib.display(), known_tokens(.found))]
    NoToken {
        /// The library's path.
        lib: PathBuf,
        /// The token asked for, as a message names it.
        token: String,
        /// The labels of the tokens the library does have.
        found: Vec<String>,
    },
    /// The token refused the PIN (or has none set).
    #[error("login to token {token} failed: {cause}")]
    Login {
        /// The token, as a message names it.
        token: String,
        /// Why, in words.
        cause: String,
    },
    /// No object of the kind asked for has the label.
    #[error("no {what} labelled '{label}' in token {token}")]
    NoKey {
        /// What kind of object ("AES key", "private key").
        what: &'static str,
        /// Its label.
        label: String,
        /// The token.
        token: String,
    },
    /// Several objects share a label, so which one is meant is unclear.
    #[error("{count} {what}s are labelled '{label}' in token {token}; labels must be unique")]
    Ambiguous {
        /// What kind of object.
        what: &'static str,
        /// The label.
        label: String,
        /// How many.
        count: usize,
        /// The token.
        token: String,
    },
    /// A key with the label exists already (and a new one was asked for).
    #[error("a {what} labelled '{label}' already exists in token {token}")]
    Exists {
        /// What kind of object.
        what: &'static str,
        /// The label.
        label: String,
        /// The token.
        token: String,
    },
    /// The token refused an operation.
    #[error("{what} failed: {cause}")]
    Operation {
        /// What was being done.
        what: &'static str,
        /// The PKCS#11 return value, by name.
        cause: String,
        /// The return value, for callers that tell failures apart.
        rv: Option<RvError>,
    },
}

fn known_tokens(found: &[String]) -> String {
    if found.is_empty() {
        " (it has no initialised token)".into()
    } else {
        format!(
            " (tokens: {})",
            found
                .iter()
                .map(|l| format!("'{l}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A PKCS#11 return value's name, `CKR_PIN_INCORRECT` for
/// `RvError::PinIncorrect`: what HSM manuals and logs call it.
pub fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `what` failed with `e`.
pub fn operation(what: &'static str, e: CkError) -> HsmError {
    match e {
        CkError::Pkcs11(rv, _) => HsmError::Operation {
            what,
            cause: rv_name(rv),
            rv: Some(rv),
        },
        other => HsmError::Operation {
            what,
            cause: other.to_string(),
            rv: None,
        },
    }
}

fn login_cause(rv: RvError) -> String {
    match rv {
        RvError::PinIncorrect => "the PIN is incorrect".into(),
        RvError::PinLocked => "the PIN is locked (too many wrong PINs)".into(),
        RvError::PinExpired => "the PIN has expired".into(),
        RvError::PinLenRange => "the PIN's length is outside what the token takes".into(),
        RvError::UserPinNotInitialized => "the token has no user PIN set".into(),
        other => rv_name(other),
    }
}

/// Errors after which a session is not worth keeping.
fn session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::TokenNotPresent
            | RvError::UserNotLoggedIn
    )
}

/// Each PKCS#11 library, loaded and initialised once per process.
static LIBRARIES: LazyLock<Mutex<HashMap<PathBuf, Pkcs11>>> = LazyLock::new(Default::default);

/// Each token this process is logged in to, by library and slot. A token
/// answers a second login with `CKR_USER_ALREADY_LOGGED_IN` without
/// looking at the PIN, so a second connection shares the first (and must
/// give the same PIN) instead of logging in again.
static TOKENS: LazyLock<Mutex<HashMap<TokenKey, std::sync::Weak<Hsm>>>> =
    LazyLock::new(Default::default);

/// A token: its library's path and its slot.
type TokenKey = (PathBuf, u64);

/// The library at `lib`, loaded and initialised (once per process).
pub fn library(lib: &Path) -> Result<Pkcs11, HsmError> {
    let load_error = |cause: String| HsmError::Load {
        lib: lib.to_owned(),
        cause,
    };
    let key = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_owned());
    let mut libraries = LIBRARIES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = libraries.get(&key) {
        return Ok(ctx.clone());
    }
    if !lib.is_absolute() {
        // A bare name would be looked up on the loader's search path: the
        // operator should say which library holds their keys.
        return Err(load_error("give the library's absolute path".into()));
    }
    let ctx = Pkcs11::new(lib).map_err(|e| {
        load_error(match e {
            CkError::LibraryLoading(inner) => inner.to_string(),
            other => other.to_string(),
        })
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(CkError::Pkcs11(rv, _)) => {
            return Err(load_error(format!("C_Initialize: {}", rv_name(rv))));
        }
        Err(e) => return Err(load_error(format!("C_Initialize: {e}"))),
    }
    libraries.insert(key, ctx.clone());
    Ok(ctx)
}

/// A logged-in token.
pub struct Hsm {
    ctx: Pkcs11,
    slot: Slot,
    lib: PathBuf,
    token_label: String,
    pin: Pin,
    sessions: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("lib", &self.lib)
            .field("token_label", &self.token_label)
            .field("slot", &self.slot.id())
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// Loads the library, finds the token and logs in. Blocking: call it
    /// from a blocking thread (see [`Hsm::connect_async`]).
    pub fn connect(settings: &HsmSettings) -> Result<Arc<Self>, HsmError> {
        settings.check().map_err(HsmError::Settings)?;
        let pin = settings
            .pin
            .clone()
            .or_else(Pin::from_env)
            .ok_or_else(|| HsmError::Login {
                token: settings.token_name(),
                cause: format!("no PIN: set `pin`, or the environment variable {PIN_ENV}"),
            })?;
        let ctx = library(&settings.lib)?;
        let lib = settings.lib.clone();
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| HsmError::Load {
                lib: lib.clone(),
                cause: format!("cannot list slots: {e}"),
            })?;
        let mut found = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_owned();
            let matches = match (&settings.token_label, settings.slot) {
                (Some(wanted), _) => *wanted == label,
                (None, Some(id)) => slot.id() == id,
                (None, None) => false,
            };
            if matches && chosen.is_none() {
                chosen = Some((slot, label.clone()));
            }
            found.push(label);
        }
        let Some((slot, token_label)) = chosen else {
            return Err(HsmError::NoToken {
                lib,
                token: settings.token_name(),
                found,
            });
        };
        let key = (
            std::fs::canonicalize(&lib).unwrap_or_else(|_| lib.clone()),
            slot.id(),
        );
        let mut tokens = TOKENS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = tokens.get(&key).and_then(std::sync::Weak::upgrade) {
            if !same_pin(&open.pin, &pin) {
                // The token checked the first PIN; it has one user PIN.
                return Err(HsmError::Login {
                    token: open.token_name(),
                    cause: login_cause(RvError::PinIncorrect),
                });
            }
            return Ok(open);
        }
        let hsm = Self {
            ctx,
            slot,
            lib,
            token_label,
            pin,
            sessions: Mutex::new(Vec::new()),
        };
        // Log in now, so a wrong PIN shows at start, and keep the session:
        // the login lasts while one of the process's sessions is open.
        let session = hsm.open_session()?;
        hsm.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(session);
        tracing::info!(lib = %hsm.lib.display(), token = %hsm.token_label, "HSM token logged in");
        let hsm = Arc::new(hsm);
        tokens.insert(key, Arc::downgrade(&hsm));
        Ok(hsm)
    }

    /// [`Hsm::connect`] on a blocking thread.
    pub async fn connect_async(settings: HsmSettings) -> Result<Arc<Self>, HsmError> {
        tokio::task::spawn_blocking(move || Self::connect(&settings))
            .await
            .map_err(|e| HsmError::Operation {
                what: "connecting",
                cause: e.to_string(),
                rv: None,
            })?
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The library's path.
    pub fn lib(&self) -> &Path {
        &self.lib
    }

    fn token_name(&self) -> String {
        format!("'{}'", self.token_label)
    }

    fn open_session(&self) -> Result<Session, HsmError> {
        let session = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| operation("opening a session", e))?;
        let pin = AuthPin::new(self.pin.0.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(rv, _)) => Err(HsmError::Login {
                token: self.token_name(),
                cause: login_cause(rv),
            }),
            Err(e) => Err(HsmError::Login {
                token: self.token_name(),
                cause: e.to_string(),
            }),
        }
    }

    /// Runs `f` with a logged-in session. Blocking: PKCS#11 calls block
    /// the thread; async code uses [`Hsm::run`].
    pub fn with_session<T>(
        &self,
        f: impl Fn(&Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        // One retry on a fresh session when the token dropped the old one
        // (an HSM restarted, a network HSM reconnected).
        for attempt in 0..2 {
            let pooled = self
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let session = match pooled {
                Some(s) => s,
                None => self.open_session()?,
            };
            let result = f(&session);
            let lost = matches!(
                &result,
                Err(HsmError::Operation { rv: Some(rv), .. }) if session_lost(*rv)
            );
            if !lost {
                let mut pool = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
                if pool.len() < POOLED_SESSIONS {
                    pool.push(session);
                }
                return result;
            }
            if attempt == 1 {
                return result;
            }
            tracing::warn!(token = %self.token_label, "HSM session lost; retrying on a new one");
        }
        Err(HsmError::Operation {
            what: "using a session",
            cause: "no session".into(),
            rv: None,
        })
    }

    /// [`Hsm::with_session`] on a blocking thread.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl Fn(&Hsm, &Session) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, HsmError> {
        let hsm = self.clone();
        tokio::task::spawn_blocking(move || hsm.with_session(|session| f(&hsm, session)))
            .await
            .map_err(|e| HsmError::Operation {
                what,
                cause: e.to_string(),
                rv: None,
            })?
    }

    /// The one object of `class` labelled `label`, if any; `what` names the
    /// kind in messages.
    pub fn find(
        &self,
        session: &Session,
        class: ObjectClass,
        label: &str,
        what: &'static str,
    ) -> Result<Option<ObjectHandle>, HsmError> {
        let found = session
            .find_objects(&[
                Attribute::Token(true),
                Attribute::Class(class),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| operation("finding a key", e))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(HsmError::Ambiguous {
                what,
                label: label.to_owned(),
                count: many.len(),
                token: self.token_name(),
            }),
        }
    }

    /// Like [`Hsm::find`], but a missing object is an error.
    pub fn find_required(
        &self,
        session: &Session,
        class: ObjectClass,
        label: &str,
        what: &'static str,
    ) -> Result<ObjectHandle, HsmError> {
        self.find(session, class, label, what)?
            .ok_or_else(|| self.no_key(what, label))
    }

    /// The error for a missing `what` labelled `label`.
    pub fn no_key(&self, what: &'static str, label: &str) -> HsmError {
        HsmError::NoKey {
            what,
            label: label.to_owned(),
            token: self.token_name(),
        }
    }

    /// The error for an existing `what` labelled `label`.
    pub fn exists(&self, what: &'static str, label: &str) -> HsmError {
        HsmError::Exists {
            what,
            label: label.to_owned(),
            token: self.token_name(),
        }
    }

    /// How the key labelled `label` of `class` is protected, read from the
    /// token: what an operator (and the tests) check to know it cannot
    /// leave.
    pub fn protection(&self, class: ObjectClass, label: &str) -> Result<KeyProtection, HsmError> {
        self.with_session(|session| {
            let handle = self.find_required(session, class, label, "key")?;
            let attributes = session
                .get_attributes(
                    handle,
                    &[
                        AttributeType::Token,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                    ],
                )
                .map_err(|e| operation("reading a key's attributes", e))?;
            let mut protection = KeyProtection::default();
            for attribute in attributes {
                match attribute {
                    Attribute::Token(v) => protection.token = v,
                    Attribute::Sensitive(v) => protection.sensitive = v,
                    Attribute::Extractable(v) => protection.extractable = v,
                    Attribute::NeverExtractable(v) => protection.never_extractable = v,
                    _ => {}
                }
            }
            Ok(protection)
        })
    }
}

/// The HSM as configured, connected at first use (on a blocking thread)
/// and kept: a broker starts, and stays up sealed, with its HSM out of
/// reach, and a failed connection is tried again at the next use.
#[derive(Debug)]
pub struct HsmConnection {
    settings: Option<HsmSettings>,
    connected: tokio::sync::OnceCell<Arc<Hsm>>,
}

impl HsmConnection {
    /// A connection to make when first used.
    pub fn new(settings: HsmSettings) -> Self {
        Self {
            settings: Some(settings),
            connected: tokio::sync::OnceCell::new(),
        }
    }

    /// A connection already made.
    pub fn ready(hsm: Arc<Hsm>) -> Self {
        Self {
            settings: None,
            connected: tokio::sync::OnceCell::new_with(Some(hsm)),
        }
    }

    /// The logged-in token, connecting first if need be.
    pub async fn get(&self) -> Result<Arc<Hsm>, HsmError> {
        self.connected
            .get_or_try_init(|| async {
                let settings = self
                    .settings
                    .clone()
                    .ok_or_else(|| HsmError::Settings("no HSM settings to connect with".into()))?;
                Hsm::connect_async(settings).await
            })
            .await
            .cloned()
    }
}

/// A key's protection attributes, as the token reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyProtection {
    /// `CKA_TOKEN`: kept in the token, not only in the session.
    pub token: bool,
    /// `CKA_SENSITIVE`: its value cannot be read.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: it could be wrapped out of the token.
    pub extractable: bool,
    /// `CKA_NEVER_EXTRACTABLE`: it never was extractable.
    pub never_extractable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named_with_the_cause() {
        let e = Hsm::connect(&HsmSettings {
            lib: "/nonexistent/libnothing.so".into(),
            token_label: Some("t".into()),
            slot: None,
            pin: Some(Pin::new("1234")),
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("cannot load /nonexistent/libnothing.so: "),
            "{e}"
        );
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn a_relative_library_path_is_refused() {
        let e = library(Path::new("libsofthsm2.so"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute path"), "{e}");
    }

    #[test]
    fn the_pin_never_shows() {
        let settings = HsmSettings {
            lib: "/x.so".into(),
            token_label: Some("t".into()),
            slot: None,
            pin: Some(Pin::new("s3cret-pin")),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn settings_name_one_token() {
        let mut s = HsmSettings {
            lib: "/x.so".into(),
            token_label: None,
            slot: None,
            pin: None,
        };
        assert!(s.check().is_err());
        s.slot = Some(0);
        assert!(s.check().is_ok());
        s.token_label = Some("a".into());
        assert!(s.check().is_err());
        s.slot = None;
        assert!(s.check().is_ok());
        s.token_label = Some("x".repeat(33));
        assert!(s.check().is_err());
    }

    #[test]
    fn return_values_are_named_as_pkcs11_names_them() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(rv_name(RvError::KeyHandleInvalid), "CKR_KEY_HANDLE_INVALID");
    }
}
