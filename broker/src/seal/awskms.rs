//! The `awskms` seal: the root key encrypted by a symmetric key in AWS KMS,
//! or in anything that speaks its JSON API at an overridden endpoint.
//!
//! ```toml
//! [seal]
//! type = "awskms"
//! region = "eu-west-1"                 # else AWS_REGION / AWS_DEFAULT_REGION
//! kms_key_id = "alias/broker-seal"     # an id, ARN or alias
//! # endpoint = "http://127.0.0.1:4566" # a local KMS API server
//! # access_key / secret_key / session_token: else AWS_ACCESS_KEY_ID,
//! # AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, as the AWS tools read them
//! ```
//!
//! This module owns the KMS wire calls (`TrentService.Encrypt`, `Decrypt`,
//! `DescribeKey` over `application/x-amz-json-1.1`, signed with SigV4). It
//! must never put a credential, the root key or a KMS plaintext in a log, an
//! error or `Debug` output, and never follows a redirect (a signed request
//! carrying the root key goes to the configured endpoint or nowhere).
//!
//! # Why direct `Encrypt`, not a `GenerateDataKey` envelope
//!
//! The seal wraps one 32-byte root key, rarely (init, unseal, rekey,
//! migration). KMS `Encrypt` takes up to 4 KiB, so the root key is sent to
//! KMS directly with the associated data as its *encryption context*: KMS
//! itself refuses a `Decrypt` with another context, and the context shows
//! in CloudTrail and can be required in key policies. An envelope (Vault's
//! go-kms-wrapping: `GenerateDataKey`, then AES-GCM here) is for payloads
//! past 4 KiB; for 32 bytes it adds a local cipher and a second key to
//! zeroize without keeping anything from KMS that the direct call does not
//! (either way a plaintext key crosses the TLS connection once). The blob
//! starts with a format byte, so an envelope can be added later and old
//! blobs still open.
//!
//! # What a blob holds
//!
//! `WrappedBlob::key_id` is the key ARN that KMS reported when it
//! encrypted, and `Decrypt` passes it as `KeyId`: a symmetric ciphertext
//! names its key, so the blob still opens after `kms_key_id` in the config
//! points at another key (as long as the old one is enabled and allowed).
//!
//! # Failures
//!
//! Every failure leaves the broker sealed and names the cause:
//! an unreachable KMS is [`SealError::Unavailable`] ("cannot reach the KMS
//! at <endpoint>: …", within the 5 s connect / 10 s request bounds); a KMS
//! error answer is [`SealError::Refused`] ("<__type>: <message>"), except
//! `InvalidCiphertextException` and `IncorrectKeyException` (wrong key or
//! context, altered blob), which are [`SealError::Unwrap`].
//!
//! # What the tests show
//!
//! The end-to-end tests (`tests/all/awskms.rs`) run against moto's server
//! mode, which checks each request's SigV4 signature against the IAM access
//! keys it holds once its initial unchecked calls are spent; the unit tests
//! below also check the signer against AWS's published SigV4 test vectors.
//! The HTTP stack's own buffers (request and response bodies) hold the
//! base64 root key for the length of a call and are not zeroized; the
//! copies this module makes are.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Seal, SealError, SealKind, WrappedBlob};

/// How long to wait for a TCP (and TLS) connection to the KMS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole KMS call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest KMS answer read; real ones are a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// KMS `Encrypt` takes at most this many plaintext bytes.
const MAX_PLAINTEXT: usize = 4096;
/// The encryption context key the associated data goes under.
const CONTEXT_KEY: &str = "broker_aad";
/// First byte of a blob's ciphertext: a KMS `CiphertextBlob` follows.
const FORMAT_DIRECT: u8 = 1;

/// `[seal] type = "awskms"`: which key, where, and with what credentials.
/// Fields left out fall back to the AWS environment variables.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsKmsConfig {
    /// The AWS region (`AWS_REGION`, then `AWS_DEFAULT_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    /// The KMS key: id, ARN, alias name (`alias/…`) or alias ARN.
    pub kms_key_id: String,
    /// The KMS endpoint, for a local KMS API server or a VPC endpoint
    /// (`AWS_ENDPOINT_URL_KMS`, then `AWS_ENDPOINT_URL`; else the region's
    /// public endpoint). `http://` only on a loopback address.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Access key id (`AWS_ACCESS_KEY_ID`).
    #[serde(default)]
    pub access_key: Option<String>,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY`).
    #[serde(default)]
    pub secret_key: Option<Zeroizing<String>>,
    /// Session token of temporary credentials (`AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for AwsKmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: bool| if v { "set" } else { "unset" };
        f.debug_struct("AwsKmsConfig")
            .field("region", &self.region)
            .field("kms_key_id", &self.kms_key_id)
            .field("endpoint", &self.endpoint)
            .field("access_key", &set(self.access_key.is_some()))
            .field("secret_key", &set(self.secret_key.is_some()))
            .field("session_token", &set(self.session_token.is_some()))
            .finish()
    }
}

/// What `DescribeKey` says of the configured key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyInfo {
    /// The key's ARN.
    pub arn: String,
    /// `Enabled`, `Disabled`, `PendingDeletion`, …
    pub state: String,
}

/// A key in AWS KMS (or a KMS API server) that wraps the root key.
pub struct AwsKmsSeal {
    endpoint: url::Url,
    region: String,
    kms_key_id: String,
    credentials: Credentials,
    http: reqwest::Client,
}

impl std::fmt::Debug for AwsKmsSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsSeal")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("kms_key_id", &self.kms_key_id)
            .finish_non_exhaustive()
    }
}

fn unavailable(cause: impl Into<String>) -> SealError {
    SealError::Unavailable {
        provider: SealKind::Awskms,
        cause: cause.into(),
    }
}

fn refused(cause: impl Into<String>) -> SealError {
    SealError::Refused {
        provider: SealKind::Awskms,
        cause: cause.into(),
    }
}

/// A config value, or else the first environment variable set (non-empty).
fn or_env(
    value: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
) -> Option<Zeroizing<String>> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Some(Zeroizing::new(v.to_owned()));
    }
    names
        .iter()
        .filter_map(|n| env(n).map(Zeroizing::new))
        .find(|v| !v.is_empty())
}

/// Checks an endpoint: http(s), a host, no credentials or query in it, and
/// plain http only to a loopback address (the root key crosses it).
fn parse_endpoint(text: &str) -> Result<url::Url, SealError> {
    let bad = |why: &str| unavailable(format!("endpoint {text:?} {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(unavailable(
            "the endpoint must not carry credentials: use access_key and secret_key",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(bad("has no host")),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(bad(
            "must be https: plain http is allowed only to a loopback address (a local KMS)",
        )),
        _ => Err(bad("must be an http(s) URL")),
    }
}

impl AwsKmsSeal {
    /// A seal from its config, with the process environment as fallback.
    /// Checks the settings only: the KMS is first reached by a call.
    pub fn new(config: &AwsKmsConfig) -> Result<Self, SealError> {
        Self::with_env(config, &|name| std::env::var(name).ok())
    }

    /// As [`AwsKmsSeal::new`], reading fallbacks through `env`.
    pub fn with_env(
        config: &AwsKmsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SealError> {
        if config.kms_key_id.trim().is_empty() {
            return Err(unavailable("kms_key_id is empty"));
        }
        let region = or_env(
            config.region.as_deref(),
            env,
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
        )
        .ok_or_else(|| unavailable("no region: set region under [seal] or AWS_REGION"))?;
        let region = region.as_str().to_owned();
        if !region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(unavailable(format!(
                "region {region:?} is not a region name"
            )));
        }
        let endpoint = match or_env(
            config.endpoint.as_deref(),
            env,
            &["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"],
        ) {
            Some(e) => parse_endpoint(&e)?,
            None => parse_endpoint(&format!("https://kms.{region}.amazonaws.com/"))?,
        };
        let credentials = Self::credentials(config, env)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| unavailable(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Self {
            endpoint,
            region,
            kms_key_id: config.kms_key_id.trim().to_owned(),
            credentials,
            http,
        })
    }

    /// The config's keys if it names them (both, or neither), else the
    /// environment's, as the AWS tools read them.
    fn credentials(
        config: &AwsKmsConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Credentials, SealError> {
        let env_secret = |name: &str| env(name).filter(|v| !v.is_empty()).map(Zeroizing::new);
        let (id, secret, token) = match (&config.access_key, &config.secret_key) {
            (Some(id), Some(secret)) => (
                Zeroizing::new(id.clone()),
                secret.clone(),
                config.session_token.clone(),
            ),
            (None, None) => {
                let id = env_secret("AWS_ACCESS_KEY_ID");
                let secret = env_secret("AWS_SECRET_ACCESS_KEY");
                match (id, secret) {
                    (Some(id), Some(secret)) => (id, secret, env_secret("AWS_SESSION_TOKEN")),
                    _ => {
                        return Err(unavailable(
                            "no credentials: set access_key and secret_key under [seal], \
                             or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                        ));
                    }
                }
            }
            _ => {
                return Err(unavailable(
                    "access_key and secret_key go together: set both under [seal], or neither",
                ));
            }
        };
        if id.is_empty() || secret.is_empty() {
            return Err(unavailable("access_key or secret_key is empty"));
        }
        Ok(Credentials::new(
            id.as_str(),
            secret.as_str(),
            token.map(|t| t.as_str().to_owned()),
            None,
            "broker-seal-config",
        ))
    }

    /// The endpoint calls go to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Asks KMS about the configured key: reachable, allowed, and usable
    /// for `Encrypt` (enabled, symmetric). Used at start, so a broken
    /// configuration shows before anything is wrapped.
    pub async fn check(&self) -> Result<KmsKeyInfo, SealError> {
        #[derive(Serialize)]
        struct Ask<'a> {
            #[serde(rename = "KeyId")]
            key_id: &'a str,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "KeyMetadata")]
            meta: Meta,
        }
        #[derive(Deserialize)]
        struct Meta {
            #[serde(rename = "Arn")]
            arn: String,
            #[serde(rename = "KeyState", default)]
            state: Option<String>,
            #[serde(rename = "KeySpec", default)]
            spec: Option<String>,
            #[serde(rename = "KeyUsage", default)]
            usage: Option<String>,
        }
        let body = to_body(&Ask {
            key_id: &self.kms_key_id,
        })?;
        let answer: Answer = parse_answer("DescribeKey", &self.call("DescribeKey", body).await?)?;
        let meta = answer.meta;
        let info = KmsKeyInfo {
            arn: meta.arn,
            state: meta.state.unwrap_or_else(|| "Enabled".into()),
        };
        if info.state != "Enabled" {
            return Err(refused(format!(
                "key {} is {}, not Enabled",
                info.arn, info.state
            )));
        }
        if let Some(spec) = meta.spec.filter(|s| s != "SYMMETRIC_DEFAULT") {
            return Err(refused(format!(
                "key {} is a {spec} key; the seal needs a SYMMETRIC_DEFAULT key",
                info.arn
            )));
        }
        if let Some(usage) = meta.usage.filter(|u| u != "ENCRYPT_DECRYPT") {
            return Err(refused(format!(
                "key {} is for {usage}, not ENCRYPT_DECRYPT",
                info.arn
            )));
        }
        Ok(info)
    }

    /// One signed KMS call: `X-Amz-Target: TrentService.<operation>`.
    /// Returns the answer's body (2xx), or the error it stands for.
    async fn call(
        &self,
        operation: &str,
        body: Zeroizing<Vec<u8>>,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let target = format!("TrentService.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signed = sign_request(
            &self.credentials,
            &self.region,
            "kms",
            "POST",
            self.endpoint.as_str(),
            &headers,
            &body,
            SystemTime::now(),
        )?;
        let mut request = self.http.post(self.endpoint.clone()).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for header in signed {
            let mut value = reqwest::header::HeaderValue::from_str(&header.value)
                .map_err(|_| unavailable("the request signature is not a header value"))?;
            value.set_sensitive(header.sensitive);
            request = request.header(header.name, value);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let answer = read_capped(response)
            .await
            .map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return Ok(answer);
        }
        Err(error_answer(
            operation,
            status.as_u16(),
            error_type.as_deref(),
            &answer,
        ))
    }

    fn unreachable(&self, e: &reqwest::Error) -> SealError {
        let cause = if e.is_timeout() {
            format!(
                "no answer within {} s (connect {} s)",
                REQUEST_TIMEOUT.as_secs(),
                CONNECT_TIMEOUT.as_secs()
            )
        } else {
            innermost(e)
        };
        unavailable(format!(
            "cannot reach the KMS at {}: {cause}",
            self.endpoint
        ))
    }
}

/// The deepest cause of an error: the one that says what happened
/// ("Connection refused"), without the URL the outer ones repeat.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Reads an answer body into zeroized memory, at most [`MAX_ANSWER`] bytes.
async fn read_capped(
    mut response: reqwest::Response,
) -> Result<Zeroizing<Vec<u8>>, reqwest::Error> {
    let mut out = Zeroizing::new(Vec::new());
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            break;
        }
    }
    Ok(out)
}

/// A request body as JSON, in zeroized memory.
fn to_body<T: Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, SealError> {
    serde_json::to_vec(value)
        .map(Zeroizing::new)
        .map_err(|e| unavailable(format!("cannot encode a KMS request: {e}")))
}

/// A 2xx answer's JSON; anything else is the KMS misbehaving.
fn parse_answer<T: serde::de::DeserializeOwned>(
    operation: &str,
    body: &[u8],
) -> Result<T, SealError> {
    // serde_json's error names a position, never the input's text.
    serde_json::from_slice(body).map_err(|e| {
        refused(format!(
            "the KMS answered {operation} with something unexpected: {e}"
        ))
    })
}

/// What an error answer means. KMS answers JSON (`__type`, `message`);
/// signature and auth failures may come as XML (`<Code>`, `<Message>`).
fn error_answer(operation: &str, status: u16, header_type: Option<&str>, body: &[u8]) -> SealError {
    let (kind, message) = error_fields(header_type, body);
    if matches!(
        kind.as_deref(),
        Some("InvalidCiphertextException" | "IncorrectKeyException")
    ) {
        return SealError::Unwrap {
            provider: SealKind::Awskms,
        };
    }
    let cause = match (kind, message) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(kind), None) => kind,
        (None, Some(message)) => format!("{operation} failed with HTTP {status}: {message}"),
        (None, None) => format!("{operation} failed with HTTP {status}"),
    };
    refused(cause)
}

/// The error type and message of an error answer, each cleaned and bounded
/// so a hostile or broken server cannot flood a log line.
fn error_fields(header_type: Option<&str>, body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(Deserialize)]
    struct JsonError {
        #[serde(rename = "__type", default)]
        kind: Option<String>,
        #[serde(alias = "Message", default)]
        message: Option<String>,
    }
    let (mut kind, mut message) = (None, None);
    if let Ok(e) = serde_json::from_slice::<JsonError>(body) {
        kind = e.kind;
        message = e.message;
    } else if let Ok(text) = std::str::from_utf8(body) {
        kind = between(text, "<Code>", "</Code>").map(str::to_owned);
        message = between(text, "<Message>", "</Message>").map(str::to_owned);
    }
    let kind = kind
        .or_else(|| header_type.map(str::to_owned))
        // "aws.protocols#NotFoundException" and
        // "NotFoundException:http://…" both mean NotFoundException.
        .map(|k| {
            let k = k.rsplit('#').next().unwrap_or_default();
            k.split(':').next().unwrap_or_default().to_owned()
        })
        .map(|k| clean(&k, 64))
        .filter(|k| !k.is_empty());
    let message = message.map(|m| clean(&m, 300)).filter(|m| !m.is_empty());
    (kind, message)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// At most `max` characters, control characters replaced.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A header the signer adds (`authorization`, `x-amz-date`,
/// `x-amz-security-token`).
struct SignedHeader {
    name: &'static str,
    value: String,
    sensitive: bool,
}

/// Signs a request with SigV4 and returns the headers to add. The body is
/// hashed here and only its hash reaches the signer, which may trace its
/// inputs.
#[allow(clippy::too_many_arguments)]
fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<SignedHeader>, SealError> {
    use sha2::Digest;
    let failed = |e: &dyn std::fmt::Display| unavailable(format!("cannot sign the request: {e}"));
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let payload_hash = hex::encode(sha2::Sha256::digest(body));
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Precomputed(payload_hash),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| SignedHeader {
            name: h.name(),
            value: h.value().to_owned(),
            // A signature is no secret, but kept out of Debug all the same.
            sensitive: h.sensitive() || h.name() == "authorization",
        })
        .collect())
}

/// The encryption context that binds a ciphertext to `aad` (none when
/// `aad` is empty). Base64, since a context holds strings and `aad` is bytes.
fn context(aad: &[u8]) -> Option<std::collections::BTreeMap<&'static str, String>> {
    (!aad.is_empty()).then(|| [(CONTEXT_KEY, STANDARD.encode(aad))].into_iter().collect())
}

#[async_trait::async_trait]
impl Seal for AwsKmsSeal {
    fn kind(&self) -> SealKind {
        SealKind::Awskms
    }

    async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedBlob, SealError> {
        #[derive(Serialize)]
        struct Ask<'a> {
            #[serde(rename = "KeyId")]
            key_id: &'a str,
            #[serde(rename = "Plaintext")]
            plaintext: &'a str,
            #[serde(rename = "EncryptionContext", skip_serializing_if = "Option::is_none")]
            context: Option<std::collections::BTreeMap<&'static str, String>>,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "CiphertextBlob")]
            blob: String,
            #[serde(rename = "KeyId")]
            key_id: String,
        }
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(refused(format!(
                "KMS Encrypt takes 1 to {MAX_PLAINTEXT} bytes, not {}",
                plaintext.len()
            )));
        }
        let encoded = Zeroizing::new(STANDARD.encode(plaintext));
        let body = to_body(&Ask {
            key_id: &self.kms_key_id,
            plaintext: &encoded,
            context: context(aad),
        })?;
        let answer: Answer = parse_answer("Encrypt", &self.call("Encrypt", body).await?)?;
        let blob = STANDARD.decode(answer.blob.as_bytes()).map_err(|_| {
            refused("the KMS answered Encrypt with a CiphertextBlob that is not base64")
        })?;
        if blob.is_empty() || answer.key_id.is_empty() {
            return Err(refused(
                "the KMS answered Encrypt without a ciphertext or key id",
            ));
        }
        let mut ciphertext = Vec::with_capacity(1 + blob.len());
        ciphertext.push(FORMAT_DIRECT);
        ciphertext.extend_from_slice(&blob);
        Ok(WrappedBlob {
            provider: SealKind::Awskms,
            key_id: answer.key_id,
            ciphertext,
        })
    }

    async fn decrypt(
        &self,
        blob: &WrappedBlob,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        #[derive(Serialize)]
        struct Ask<'a> {
            #[serde(rename = "CiphertextBlob")]
            blob: String,
            #[serde(rename = "KeyId", skip_serializing_if = "str::is_empty")]
            key_id: &'a str,
            #[serde(rename = "EncryptionContext", skip_serializing_if = "Option::is_none")]
            context: Option<std::collections::BTreeMap<&'static str, String>>,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(rename = "Plaintext")]
            plaintext: Zeroizing<String>,
            #[serde(rename = "KeyId", default)]
            key_id: Option<String>,
        }
        if blob.provider != SealKind::Awskms {
            return Err(SealError::Mismatch {
                provider: SealKind::Awskms,
                found: blob.provider.to_string(),
            });
        }
        let kms_blob = match blob.ciphertext.split_first() {
            Some((&FORMAT_DIRECT, rest)) if !rest.is_empty() => rest,
            Some((&FORMAT_DIRECT, _)) | None => {
                return Err(SealError::Unwrap {
                    provider: SealKind::Awskms,
                });
            }
            Some((format, _)) => {
                return Err(SealError::Mismatch {
                    provider: SealKind::Awskms,
                    found: format!("an unknown awskms blob format ({format})"),
                });
            }
        };
        let body = to_body(&Ask {
            blob: STANDARD.encode(kms_blob),
            key_id: &blob.key_id,
            context: context(aad),
        })?;
        let answer: Answer = parse_answer("Decrypt", &self.call("Decrypt", body).await?)?;
        if let Some(key_id) = answer
            .key_id
            .filter(|k| !blob.key_id.is_empty() && *k != blob.key_id)
        {
            return Err(refused(format!(
                "the KMS decrypted with key {key_id}, not {} that the blob names",
                blob.key_id
            )));
        }
        let mut plaintext = Zeroizing::new(Vec::new());
        STANDARD
            .decode_vec(answer.plaintext.as_bytes(), &mut plaintext)
            .map_err(|_| refused("the KMS answered Decrypt with a Plaintext that is not base64"))?;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn config(toml_text: &str) -> AwsKmsConfig {
        toml::from_str(toml_text).unwrap()
    }

    const EXAMPLE_ID: &str = "AKIDEXAMPLE";
    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn authorization(headers: &[SignedHeader]) -> &str {
        headers
            .iter()
            .find(|h| h.name == "authorization")
            .map(|h| h.value.as_str())
            .unwrap()
    }

    // AWS's published SigV4 test suite, "get-vanilla": GET / on
    // example.amazonaws.com, service "service", us-east-1.
    #[test]
    fn signs_the_aws_test_vector_get_vanilla() {
        let creds = Credentials::new(EXAMPLE_ID, EXAMPLE_SECRET, None, None, "test");
        let headers = sign_request(
            &creds,
            "us-east-1",
            "service",
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        let date = headers.iter().find(|h| h.name == "x-amz-date").unwrap();
        assert_eq!(date.value, "20150830T123600Z");
        assert!(
            headers
                .iter()
                .any(|h| h.name == "authorization" && h.sensitive)
        );
    }

    // The suite's "post-header-key-sort": a POST with a header of its own
    // signed beside host and x-amz-date, as the KMS calls sign theirs.
    #[test]
    fn signs_the_aws_test_vector_post_header_key_sort() {
        let creds = Credentials::new(EXAMPLE_ID, EXAMPLE_SECRET, None, None, "test");
        let headers = sign_request(
            &creds,
            "us-east-1",
            "service",
            "POST",
            "https://example.amazonaws.com/",
            &[("my-header1", "value1")],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;my-header1;x-amz-date, \
             Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
        );
    }

    // The suite's "get-vanilla-with-session-token": temporary credentials
    // sign x-amz-security-token too, and send it as a sensitive header.
    #[test]
    fn signs_the_aws_test_vector_with_a_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let creds = Credentials::new(EXAMPLE_ID, EXAMPLE_SECRET, Some(token.into()), None, "t");
        let headers = sign_request(
            &creds,
            "us-east-1",
            "service",
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
        let sent = headers
            .iter()
            .find(|h| h.name == "x-amz-security-token")
            .unwrap();
        assert_eq!(sent.value, token);
        assert!(sent.sensitive);
    }

    #[test]
    fn a_kms_call_signs_its_target_and_body() {
        let creds = Credentials::new(EXAMPLE_ID, EXAMPLE_SECRET, None, None, "test");
        let sign_body = |body: &[u8], target: &str| {
            let headers = sign_request(
                &creds,
                "eu-west-1",
                "kms",
                "POST",
                "http://127.0.0.1:4566/",
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", target),
                ],
                body,
                suite_time(),
            )
            .unwrap();
            authorization(&headers).to_owned()
        };
        let signed = sign_body(b"{}", "TrentService.Encrypt");
        assert!(
            signed.contains("/20150830/eu-west-1/kms/aws4_request")
                && signed.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
            "{signed}"
        );
        assert_ne!(signed, sign_body(b"{ }", "TrentService.Encrypt"));
        assert_ne!(signed, sign_body(b"{}", "TrentService.Decrypt"));
    }

    #[test]
    fn settings_fall_back_to_the_environment() {
        let vars = env(&[
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ]);
        let seal = AwsKmsSeal::with_env(&config(r#"kms_key_id = "alias/seal""#), &vars).unwrap();
        assert_eq!(seal.region, "eu-central-1");
        assert_eq!(seal.endpoint(), "https://kms.eu-central-1.amazonaws.com/");
        assert_eq!(seal.credentials.access_key_id(), "AKIAENV");

        let seal = AwsKmsSeal::with_env(
            &config(
                r#"kms_key_id = "k"
                   region = "us-west-2"
                   endpoint = "http://127.0.0.1:4566"
                   access_key = "AKIACONF"
                   secret_key = "confsecret""#,
            ),
            &vars,
        )
        .unwrap();
        assert_eq!(seal.region, "us-west-2");
        assert_eq!(seal.endpoint(), "http://127.0.0.1:4566/");
        assert_eq!(seal.credentials.access_key_id(), "AKIACONF");
        assert_eq!(seal.credentials.secret_access_key(), "confsecret");

        let vars = env(&[
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ENDPOINT_URL_KMS", "https://kms.example.test"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "envtoken"),
        ]);
        let seal = AwsKmsSeal::with_env(&config(r#"kms_key_id = "k""#), &vars).unwrap();
        assert_eq!(seal.region, "ap-south-1");
        assert_eq!(seal.endpoint(), "https://kms.example.test/");
        assert_eq!(seal.credentials.session_token(), Some("envtoken"));
    }

    #[test]
    fn bad_settings_are_refused_clearly() {
        let creds = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ]);
        let err = |toml_text: &str, vars: &dyn Fn(&str) -> Option<String>| {
            AwsKmsSeal::with_env(&config(toml_text), vars)
                .unwrap_err()
                .to_string()
        };
        let e = err(r#"kms_key_id = "k""#, &creds);
        assert!(e.starts_with("awskms seal unavailable: no region"), "{e}");
        let e = err(
            r#"kms_key_id = "k"
                       region = "us-east-1""#,
            &env(&[]),
        );
        assert!(e.contains("no credentials"), "{e}");
        let e = err(
            r#"kms_key_id = "k"
               region = "us-east-1"
               access_key = "AKIA""#,
            &creds,
        );
        assert!(e.contains("go together"), "{e}");
        let e = err(
            r#"kms_key_id = "k"
               region = "us-east-1"
               endpoint = "http://kms.example.test""#,
            &creds,
        );
        assert!(e.contains("must be https"), "{e}");
        let e = err(
            r#"kms_key_id = "k"
               region = "us-east-1"
               endpoint = "https://AKIA:secretpart@kms.example.test""#,
            &creds,
        );
        assert!(
            e.contains("must not carry credentials") && !e.contains("secretpart"),
            "{e}"
        );
        let e = err(
            r#"kms_key_id = "k"
               region = "us-east-1/../x""#,
            &creds,
        );
        assert!(e.contains("not a region name"), "{e}");
        let e = err(
            r#"kms_key_id = " "
                       region = "us-east-1""#,
            &creds,
        );
        assert!(e.contains("kms_key_id is empty"), "{e}");
        assert!(
            toml::from_str::<AwsKmsConfig>("kms_key_id = \"k\"\nsecret = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn the_seal_section_selects_it() {
        let parsed: crate::config::SealSettings = toml::from_str(
            r#"type = "awskms"
               kms_key_id = "alias/seal"
               endpoint = "http://127.0.0.1:4566""#,
        )
        .unwrap();
        assert_eq!(parsed.kind(), SealKind::Awskms);
        let typo = toml::from_str::<crate::config::SealSettings>(
            "type = \"awskms\"\nkms_key_id = \"k\"\nkms_key = \"k\"",
        );
        assert!(typo.is_err(), "unknown keys are refused");
    }

    #[test]
    fn debug_never_shows_credentials() {
        let cfg = config(
            r#"kms_key_id = "k"
               region = "us-east-1"
               access_key = "AKIAVISIBLEID"
               secret_key = "s3cr3t-value"
               session_token = "t0ken-value""#,
        );
        let seal = AwsKmsSeal::with_env(&cfg, &env(&[])).unwrap();
        for text in [format!("{cfg:?}"), format!("{seal:?}")] {
            assert!(
                !text.contains("s3cr3t")
                    && !text.contains("t0ken")
                    && !text.contains("AKIAVISIBLE"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn blobs_of_other_providers_or_formats_are_not_sent() {
        // No KMS listens here: each case must be decided before any call.
        let seal = AwsKmsSeal::with_env(
            &config(
                r#"kms_key_id = "k"
                   region = "us-east-1"
                   endpoint = "http://127.0.0.1:9"
                   access_key = "AKIA"
                   secret_key = "s""#,
            ),
            &env(&[]),
        )
        .unwrap();
        let blob = |provider, ciphertext: &[u8]| WrappedBlob {
            provider,
            key_id: "arn:aws:kms:us-east-1:1:key/x".into(),
            ciphertext: ciphertext.to_vec(),
        };
        let e = seal.decrypt(&blob(SealKind::Local, &[1, 2]), b"a").await;
        assert!(matches!(e, Err(SealError::Mismatch { .. })), "{e:?}");
        let e = seal.decrypt(&blob(SealKind::Awskms, &[9, 2]), b"a").await;
        assert!(
            matches!(&e, Err(SealError::Mismatch { found, .. }) if found.contains("format (9)")),
            "{e:?}"
        );
        for short in [&[][..], &[FORMAT_DIRECT][..]] {
            let e = seal.decrypt(&blob(SealKind::Awskms, short), b"a").await;
            assert!(matches!(e, Err(SealError::Unwrap { .. })), "{e:?}");
        }
        let e = seal
            .encrypt(&[0; MAX_PLAINTEXT + 1], b"a")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("1 to 4096 bytes"), "{e}");
    }

    #[test]
    fn error_answers_name_the_exception() {
        let e = error_answer(
            "Encrypt",
            400,
            Some("NotFoundException"),
            br#"{"__type": "NotFoundException", "message": "Invalid keyId nope"}"#,
        );
        assert_eq!(
            e.to_string(),
            "awskms seal refused: NotFoundException: Invalid keyId nope"
        );
        let e = error_answer(
            "Decrypt",
            400,
            None,
            br#"{"__type":"com.amazonaws.kms#InvalidCiphertextException"}"#,
        );
        assert!(matches!(e, SealError::Unwrap { .. }), "{e:?}");
        let e = error_answer(
            "Decrypt",
            403,
            None,
            b"<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code>\
              <Message>The request signature we calculated does not match</Message>\
              </Error></Errors></ErrorResponse>",
        );
        assert_eq!(
            e.to_string(),
            "awskms seal refused: SignatureDoesNotMatch: The request signature we calculated does not match"
        );
        let e = error_answer("Decrypt", 400, Some("AccessDeniedException:http://x"), b"");
        assert_eq!(e.to_string(), "awskms seal refused: AccessDeniedException");
        let e = error_answer("Encrypt", 503, None, b"<html>busy</html>");
        assert_eq!(
            e.to_string(),
            "awskms seal refused: Encrypt failed with HTTP 503"
        );
        let flood = format!(r#"{{"__type":"X","message":"{}\u0007"}}"#, "a".repeat(5000));
        let e = error_answer("Encrypt", 400, None, flood.as_bytes()).to_string();
        assert!(e.len() < 400 && !e.contains('\u{7}'), "{}", e.len());
    }

    proptest! {
        // Whatever a server answers, reading it never panics and yields a
        // bounded, single-line cause.
        #[test]
        fn any_error_answer_reads_safely(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            header in proptest::option::of(".{0,80}"),
            status in 400u16..600,
        ) {
            let e = error_answer("Decrypt", status, header.as_deref(), &body).to_string();
            prop_assert!(e.starts_with("awskms seal "));
            prop_assert!(e.chars().count() < 500);
            prop_assert!(!e.contains('\n'));
        }

        #[test]
        fn json_error_answers_keep_type_and_message(
            kind in "[A-Za-z]{1,40}",
            message in "[ -~]{1,200}",
        ) {
            prop_assume!(kind != "InvalidCiphertextException" && kind != "IncorrectKeyException");
            prop_assume!(!message.trim().is_empty());
            let body = serde_json::json!({"__type": format!("ns#{kind}"), "message": message});
            let e = error_answer("Encrypt", 400, None, body.to_string().as_bytes()).to_string();
            prop_assert_eq!(e, format!("awskms seal refused: {kind}: {}", message.trim()));
        }

        #[test]
        fn any_success_answer_parses_or_errs(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            #[derive(Deserialize)]
            struct Answer {
                #[serde(rename = "Plaintext")]
                _plaintext: Zeroizing<String>,
            }
            if let Err(e) = parse_answer::<Answer>("Decrypt", &body) {
                prop_assert!(e.to_string().starts_with("awskms seal refused: the KMS answered Decrypt"));
            }
        }

        #[test]
        fn endpoints_parse_or_err(text in ".{0,120}") {
            if let Ok(url) = parse_endpoint(&text) {
                prop_assert!(matches!(url.scheme(), "http" | "https"));
                prop_assert!(url.username().is_empty() && url.password().is_none());
            }
        }
    }
}
