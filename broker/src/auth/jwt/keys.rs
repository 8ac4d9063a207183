//! The keys a JWT may be signed with: PEM public keys from the config, or
//! a JWKS fetched from the issuer (`jwks_url`, or the `jwks_uri` of its
//! OIDC discovery document) and cached in memory per mount.
//!
//! The cache is fetched again when a token names a `kid` it lacks (a
//! rotated key) or when it is older than [`MAX_AGE`], but never more than
//! once per [`MIN_REFRESH`] per mount, so tokens with made-up key ids cannot
//! make the broker hammer the issuer. A fetch that fails leaves the old
//! keys in use. Fetches have a timeout, follow no redirect, and read at
//! most [`MAX_BODY`] bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::config::{Config, Source};

/// How long a fetched key set is used before a login fetches it again.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// The least time between two fetches for one mount.
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
/// The largest JWKS or discovery document read (bytes).
pub const MAX_BODY: usize = 1024 * 1024;
/// The most keys a key set may hold; the rest are ignored.
pub const MAX_KEYS: usize = 64;
/// A whole fetch's deadline.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The signing algorithms a login may use: asymmetric ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every algorithm this broker verifies.
    pub const ALL: [Alg; 9] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    /// Accepted when the config lists none.
    pub const DEFAULT: [Alg; 6] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    /// Its JWA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm JWA names `name` (exactly), if this broker verifies it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Self::Rs256 => A::RS256,
            Self::Rs384 => A::RS384,
            Self::Rs512 => A::RS512,
            Self::Ps256 => A::PS256,
            Self::Ps384 => A::PS384,
            Self::Ps512 => A::PS512,
            Self::Es256 => A::ES256,
            Self::Es384 => A::ES384,
            Self::EdDsa => A::EdDSA,
        }
    }

    /// Whether a key of `kind` signs with it.
    pub fn fits(self, kind: KeyKind) -> bool {
        matches!(
            (self, kind),
            (
                Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512,
                KeyKind::Rsa
            ) | (Self::Es256, KeyKind::P256)
                | (Self::Es384, KeyKind::P384)
                | (Self::EdDsa, KeyKind::Ed25519)
        )
    }
}

/// A public key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, 2048 to 4096 bits.
    Rsa,
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// Ed25519.
    Ed25519,
}

/// A key a JWT may be signed with.
#[derive(Clone)]
pub struct Key {
    /// Its key id, from a JWKS.
    pub kid: Option<String>,
    /// The algorithm its JWK is restricted to.
    pub alg: Option<Alg>,
    /// Its type.
    pub kind: KeyKind,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// RSA moduli shorter than this are refused (bytes).
const RSA_MIN: usize = 2048 / 8;
/// And longer than this (bytes): the RSA implementation's own limit.
const RSA_MAX: usize = 4096 / 8;

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn rsa(n: &[u8], e: &[u8]) -> Result<DecodingKey, String> {
    let n = strip_zeros(n);
    let e = strip_zeros(e);
    if !(RSA_MIN..=RSA_MAX).contains(&n.len()) {
        return Err(format!(
            "an RSA key of {} bits (2048 to 4096 are accepted)",
            n.len() * 8
        ));
    }
    if e.is_empty() || e.len() > 8 {
        return Err("an RSA key with an unusable exponent".into());
    }
    Ok(DecodingKey::from_rsa_raw_components(n, e))
}

fn ec(kind: KeyKind, x: &[u8], y: &[u8]) -> Result<DecodingKey, String> {
    let len = if kind == KeyKind::P256 { 32 } else { 48 };
    if x.len() != len || y.len() != len {
        return Err("an EC key whose coordinates do not fit its curve".into());
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Ok(DecodingKey::from_ec_der(&point))
}

impl Key {
    /// Whether `signature` (base64url) signs `input` under this key with
    /// `alg`. A key of another type, or restricted to another algorithm,
    /// verifies nothing.
    pub fn verify(&self, alg: Alg, input: &str, signature: &str) -> bool {
        if !alg.fits(self.kind) || self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &self.key, alg.jwt())
            .unwrap_or(false)
    }

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo): RSA, EC P-256 or P-384,
    /// or Ed25519.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        use x509_parser::prelude::FromDer;
        let block = pem::parse(text.trim()).map_err(|_| "not a PEM block".to_owned())?;
        if block.tag() != "PUBLIC KEY" {
            return Err(format!(
                "a PEM {:?} block; a PUBLIC KEY is needed",
                block.tag()
            ));
        }
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(block.contents())
            .map_err(|_| "not a SubjectPublicKeyInfo".to_owned())?;
        let data: &[u8] = &spki.subject_public_key.data;
        let (kind, key) = match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.1" => {
                let x509_parser::public_key::PublicKey::RSA(k) =
                    spki.parsed().map_err(|_| "a damaged RSA key".to_owned())?
                else {
                    return Err("a damaged RSA key".into());
                };
                (KeyKind::Rsa, rsa(k.modulus, k.exponent)?)
            }
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                let kind = match curve.as_deref() {
                    Some("1.2.840.10045.3.1.7") => KeyKind::P256,
                    Some("1.3.132.0.34") => KeyKind::P384,
                    _ => return Err("an EC key on a curve other than P-256 or P-384".into()),
                };
                let len = if kind == KeyKind::P256 { 32 } else { 48 };
                if data.len() != 1 + 2 * len || data[0] != 0x04 {
                    return Err("an EC key that is not an uncompressed point".into());
                }
                (kind, ec(kind, &data[1..=len], &data[1 + len..])?)
            }
            "1.3.101.112" => {
                if data.len() != 32 {
                    return Err("a damaged Ed25519 key".into());
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(data))
            }
            other => return Err(format!("a key of type {other}, not RSA, EC or Ed25519")),
        };
        Ok(Self {
            kid: None,
            alg: None,
            kind,
            key,
        })
    }

    /// One key of a JWKS; `Err` says why it is skipped.
    fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            use base64::Engine as _;
            let v = text(name).ok_or_else(|| format!("no {name}"))?;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v.trim_end_matches('='))
                .map_err(|_| format!("{name} is not base64url"))
        };
        if let Some(u) = jwk.get("use")
            && u != "sig"
        {
            return Err("not a signing key".into());
        }
        let alg = match jwk.get("alg") {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) => {
                Some(Alg::parse(a).ok_or_else(|| format!("algorithm {a:?} is not verified here"))?)
            }
            Some(_) => return Err("alg is not text".into()),
        };
        let (kind, key) = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => (KeyKind::Rsa, rsa(&bytes("n")?, &bytes("e")?)?),
            (Some("EC"), Some("P-256")) => (
                KeyKind::P256,
                ec(KeyKind::P256, &bytes("x")?, &bytes("y")?)?,
            ),
            (Some("EC"), Some("P-384")) => (
                KeyKind::P384,
                ec(KeyKind::P384, &bytes("x")?, &bytes("y")?)?,
            ),
            (Some("OKP"), Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("an Ed25519 key of the wrong length".into());
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
            }
            (kty, crv) => return Err(format!("key type {kty:?} {crv:?} is not verified here")),
        };
        let kid = match jwk.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err("kid is not text".into()),
        };
        Ok(Self {
            kid,
            alg,
            kind,
            key,
        })
    }
}

/// The usable keys of a JWKS document; keys of other types, or for
/// encryption, are skipped. A set with no usable key is an error.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Key>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "the JWKS is not JSON".to_owned())?;
    let Some(items) = doc.get("keys").and_then(Value::as_array) else {
        return Err("the JWKS has no keys array".into());
    };
    let mut keys = Vec::new();
    for item in items.iter().take(MAX_KEYS) {
        match Key::from_jwk(item) {
            Ok(k) => keys.push(k),
            Err(why) => tracing::debug!(why, "a JWKS key was skipped"),
        }
    }
    if keys.is_empty() {
        return Err("the JWKS has no usable signing key".into());
    }
    Ok(keys)
}

/// The keys in force for a mount, and the issuer its discovery document
/// names.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<Key>,
    /// The discovered issuer (OIDC discovery only).
    pub issuer: Option<String>,
}

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn checked_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    Ok(parsed)
}

/// Fetches `url` (trusting only `ca_pem` when it is given) within
/// [`FETCH_TIMEOUT`] and [`MAX_BODY`].
async fn get(url: &str, ca_pem: &str) -> Result<Vec<u8>, String> {
    let url = checked_url(url)?;
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT / 2)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("broker/", env!("CARGO_PKG_VERSION")));
    if !ca_pem.trim().is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|_| "the CA PEM is not PEM certificates".to_owned())?;
        if certs.is_empty() {
            return Err("the CA PEM holds no certificate".into());
        }
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder
        .build()
        .map_err(|e| format!("no HTTP client: {e}"))?;
    let mut response = client
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {}", error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!("fetching {url}: HTTP {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(format!("fetching {url}: larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("fetching {url}: larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Fetches the key set `source` names.
async fn fetch(source: &Source<'_>) -> Result<KeySet, String> {
    match source {
        Source::None => Err("the mount has no config".into()),
        Source::Pubkeys(pems) => Ok(KeySet {
            keys: pems.iter().filter_map(|p| Key::from_pem(p).ok()).collect(),
            issuer: None,
        }),
        Source::Jwks { url, ca_pem } => Ok(KeySet {
            keys: parse_jwks(&get(url, ca_pem).await?)?,
            issuer: None,
        }),
        Source::Discovery { url, ca_pem } => {
            let base = url.trim_end_matches('/');
            let well_known = format!("{base}/.well-known/openid-configuration");
            let doc: Value = serde_json::from_slice(&get(&well_known, ca_pem).await?)
                .map_err(|_| "the discovery document is not JSON".to_owned())?;
            let issuer = doc
                .get("issuer")
                .and_then(Value::as_str)
                .ok_or_else(|| "the discovery document names no issuer".to_owned())?;
            if issuer.trim_end_matches('/') != base {
                return Err(format!(
                    "the discovery document's issuer {issuer:?} is not {url:?}"
                ));
            }
            let jwks_uri = doc
                .get("jwks_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| "the discovery document has no jwks_uri".to_owned())?;
            Ok(KeySet {
                keys: parse_jwks(&get(jwks_uri, ca_pem).await?)?,
                issuer: Some(issuer.to_owned()),
            })
        }
    }
}

#[derive(Debug)]
struct Cached {
    fingerprint: String,
    set: Arc<KeySet>,
    fetched: Instant,
}

/// The key sets of a backend's mounts, by mount UUID.
#[derive(Debug, Default)]
pub struct KeyCache {
    sets: Mutex<HashMap<String, Cached>>,
    /// Serialises fetches per mount; holds the last attempt's time.
    fetches: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl KeyCache {
    fn cached(&self, mount: &str, fingerprint: &str) -> Option<(Arc<KeySet>, Instant)> {
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.get(mount)
            .filter(|c| c.fingerprint == fingerprint)
            .map(|c| (c.set.clone(), c.fetched))
    }

    fn store(&self, mount: &str, fingerprint: String, set: Arc<KeySet>) {
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.insert(
            mount.to_owned(),
            Cached {
                fingerprint,
                set,
                fetched: Instant::now(),
            },
        );
    }

    fn fetch_lock(&self, mount: &str) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let mut fetches = self.fetches.lock().unwrap_or_else(|e| e.into_inner());
        fetches.entry(mount.to_owned()).or_default().clone()
    }

    /// Fetches `config`'s keys now and caches them: a config write checks
    /// its source this way. Errors say what went wrong.
    pub async fn prime(&self, mount: &str, config: &Config) -> Result<(), String> {
        let source = config.source();
        if !source.is_remote() {
            return Ok(());
        }
        let lock = self.fetch_lock(mount);
        let mut last = lock.lock().await;
        *last = Some(Instant::now());
        let set = fetch(&source).await?;
        self.store(mount, config.fingerprint(), Arc::new(set));
        Ok(())
    }

    /// The keys in force for `config` on `mount`, fetched again if the
    /// copy is old or lacks `kid` (within the rate limit). `Err`: none
    /// could be had.
    pub async fn keys(
        &self,
        mount: &str,
        config: &Config,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, String> {
        let source = config.source();
        let fingerprint = config.fingerprint();
        if !source.is_remote() {
            // Configured keys, parsed once per config (the fingerprint
            // covers them), not on every login.
            if let Some((set, _)) = self.cached(mount, &fingerprint) {
                return Ok(set);
            }
            let set = Arc::new(fetch(&source).await?);
            self.store(mount, fingerprint, set.clone());
            return Ok(set);
        }
        let current = self.cached(mount, &fingerprint);
        let fresh = |c: &(Arc<KeySet>, Instant)| {
            c.1.elapsed() < MAX_AGE && kid.is_none_or(|k| c.0.has_kid(k))
        };
        if let Some(c) = current.as_ref().filter(|c| fresh(c)) {
            return Ok(c.0.clone());
        }
        let lock = self.fetch_lock(mount);
        let mut last = lock.lock().await;
        // Another login may have fetched while this one waited.
        let now_cached = self.cached(mount, &fingerprint);
        if let Some(c) = &now_cached
            && current.as_ref().is_none_or(|old| c.1 > old.1)
        {
            return Ok(c.0.clone());
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return current
                .map(|c| c.0)
                .ok_or_else(|| "the keys were fetched moments ago; not fetching again yet".into());
        }
        *last = Some(Instant::now());
        match fetch(&source).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.store(mount, fingerprint, set.clone());
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(mount, error = %e, "the JWT issuer's keys could not be fetched");
                current.map(|c| c.0).ok_or(e)
            }
        }
    }

    /// Forgets a mount's keys (it is being disabled).
    pub fn forget(&self, mount: &str) {
        self.sets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(mount);
        self.fetches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(mount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn algorithms_are_named_exactly_and_fit_their_keys() {
        for a in Alg::ALL {
            assert_eq!(Alg::parse(a.name()), Some(a));
        }
        for bad in ["none", "HS256", "rs256", "RS256 ", "ES512", "Ed25519"] {
            assert_eq!(Alg::parse(bad), None, "{bad}");
        }
        assert!(Alg::Rs256.fits(KeyKind::Rsa));
        assert!(Alg::Ps512.fits(KeyKind::Rsa));
        assert!(!Alg::Es256.fits(KeyKind::P384));
        assert!(!Alg::Es384.fits(KeyKind::P256));
        assert!(!Alg::EdDsa.fits(KeyKind::Rsa));
    }

    #[test]
    fn pem_keys_are_read_by_type() {
        let k = Key::from_pem(ED_PEM).unwrap();
        assert_eq!(k.kind, KeyKind::Ed25519);
        assert!(Key::from_pem("nonsense").is_err());
        let cert = ED_PEM.replace("PUBLIC KEY", "CERTIFICATE");
        assert!(Key::from_pem(&cert).is_err());
    }

    #[test]
    fn jwks_keys_are_checked_one_by_one() {
        let b64 = |b: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        let n = b64(&[0xC5; 256]);
        let doc = json!({ "keys": [
            { "kty": "RSA", "kid": "r", "n": n, "e": "AQAB", "alg": "RS256", "use": "sig" },
            // Skipped: too short, HMAC, encryption, unknown curve, bad
            // lengths, an algorithm not verified here, odd types.
            { "kty": "RSA", "kid": "short", "n": b64(&[0xC5; 128]), "e": "AQAB" },
            { "kty": "oct", "kid": "h", "k": "c2VjcmV0" },
            { "kty": "RSA", "kid": "enc", "n": n, "e": "AQAB", "use": "enc" },
            { "kty": "EC", "crv": "P-521", "x": b64(&[1; 66]), "y": b64(&[1; 66]) },
            { "kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[1; 32]) },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 31]) },
            { "kty": "OKP", "crv": "X25519", "x": b64(&[1; 32]) },
            { "kty": "RSA", "n": n, "e": "AQAB", "alg": "HS256" },
            { "kty": "RSA", "n": n, "e": "AQAB", "kid": 5 },
            { "kty": 1 },
            "not an object",
            { "kty": "EC", "crv": "P-384", "kid": "e", "x": b64(&[1; 48]), "y": b64(&[2; 48]) },
            { "kty": "OKP", "crv": "Ed25519", "kid": "d", "x": b64(&[3; 32]) },
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["r", "e", "d"]);
        assert_eq!(keys[0].alg, Some(Alg::Rs256));
        // A key restricted to RS256 verifies nothing else.
        assert!(!keys[0].verify(Alg::Rs384, "a.b", "c2ln"));
        for bad in [
            &b"not json"[..],
            br#"{"keys": {}}"#,
            br#"{"keys": []}"#,
            br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            br#"[]"#,
        ] {
            assert!(parse_jwks(bad).is_err());
        }
    }

    #[test]
    fn only_http_urls_are_fetched() {
        assert!(checked_url("https://issuer.example/jwks").is_ok());
        assert!(checked_url("http://127.0.0.1:8/jwks").is_ok());
        for bad in ["file:///etc/passwd", "ftp://x/y", "not a url", "https://", "unix:/run/x"] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_jwks_body_is_parsed_or_refused_without_a_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let _ = parse_jwks(&body);
        }

        #[test]
        fn any_jwk_fields_are_taken_or_skipped_without_a_panic(
            kty in prop_oneof![Just("RSA".to_owned()), Just("EC".to_owned()), Just("OKP".to_owned()), "\\PC{0,8}"],
            crv in prop_oneof![Just("P-256".to_owned()), Just("P-384".to_owned()), Just("Ed25519".to_owned()), "\\PC{0,8}"],
            x in proptest::collection::vec(any::<u8>(), 0..80),
            y in proptest::collection::vec(any::<u8>(), 0..80),
            n in proptest::collection::vec(any::<u8>(), 0..600),
            e in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            use base64::Engine as _;
            let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            let doc = json!({ "keys": [
                { "kty": kty, "crv": crv, "x": b(&x), "y": b(&y), "n": b(&n), "e": b(&e) }
            ]});
            if let Ok(keys) = parse_jwks(doc.to_string().as_bytes()) {
                for k in keys {
                    // A made-up key verifies nothing, and does not panic.
                    for alg in Alg::ALL {
                        prop_assert!(!k.verify(alg, "e30.e30", "c2lnbmF0dXJl"));
                    }
                }
            }
        }

        #[test]
        fn any_pem_text_is_read_or_refused_without_a_panic(
            der in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let text = pem::encode(&pem::Pem::new("PUBLIC KEY", der));
            let _ = Key::from_pem(&text);
        }
    }
}
