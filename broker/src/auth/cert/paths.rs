//! The cert method's paths, as Vault's: `certs/{name}`, `crls/{name}`,
//! `login`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::verify;
use crate::auth::lockout::Lockout;
use crate::auth::token_fields::{self, TokenParams};
use crate::auth::login;
use crate::framework::{
    Access, Backend, Error, Field, Path, PatternError, Reply, Request, Services, Table,
    TableBackend, data, list, no_content,
};

type P = Path<CertBackend>;

/// The one answer every failed login gets.
fn refused() -> Error {
    Error::invalid("no certificate presented over TLS proves this login")
}

/// A trusted certificate and what logging in with it gives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CertRole {
    /// The certificate, PEM: a CA (trust anchor) or a pinned leaf.
    certificate: String,
    #[serde(default)]
    allowed_common_names: Vec<String>,
    #[serde(default)]
    allowed_dns_sans: Vec<String>,
    #[serde(default)]
    allowed_email_sans: Vec<String>,
    #[serde(default)]
    allowed_uri_sans: Vec<String>,
    #[serde(default)]
    allowed_organizational_units: Vec<String>,
    #[serde(default)]
    required_extensions: Vec<String>,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    token: TokenParams,
}

impl CertRole {
    /// Whether a leaf that proved this certificate also meets its name
    /// constraints: every kind configured must match.
    fn admits(&self, leaf: &verify::Names) -> bool {
        let cn = leaf.common_name.as_deref().unwrap_or_default();
        verify::allowed(&self.allowed_common_names, cn)
            && verify::any_allowed(&self.allowed_dns_sans, &leaf.dns)
            && verify::any_allowed(&self.allowed_email_sans, &leaf.emails)
            && verify::any_allowed(&self.allowed_uri_sans, &leaf.uris)
            && verify::any_allowed(&self.allowed_organizational_units, &leaf.organizational_units)
            && verify::has_extensions(&self.required_extensions, leaf)
    }
}

/// The `cert` auth method.
#[derive(Debug)]
pub struct CertBackend {
    services: Services,
    table: Table<Self>,
    lockout: Lockout,
}

/// Builds the backend: the registry's constructor for this method.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(CertBackend {
        services: services.clone(),
        table: Table::new(paths())?,
        lockout: Lockout::with(services.lockout),
    }))
}

fn paths() -> Vec<P> {
    vec![
        P::new("login")
            .summary("Log in with the client certificate presented in the TLS handshake.")
            .access(Access::Public)
            .field(Field::string("name", "the trusted certificate to log in against (default: any)").clear())
            .update(|b, r| Box::pin(b.login(r))),
        P::new("certs")
            .summary("The trusted certificates.")
            .list(|b, r| Box::pin(b.list_certs(r))),
        token_fields::fields(P::new("certs/{name}"))
            .summary("A trusted certificate: a CA whose client certificates may log in, or a pinned client certificate.")
            .field(Field::string("certificate", "PEM: a CA, or the one client certificate allowed (required when the entry is made)"))
            .field(Field::comma_list("allowed_common_names", "globs the client's CN must match").clear())
            .field(Field::comma_list("allowed_dns_sans", "globs one of its DNS names must match").clear())
            .field(Field::comma_list("allowed_email_sans", "globs one of its email addresses must match").clear())
            .field(Field::comma_list("allowed_uri_sans", "globs one of its URIs must match").clear())
            .field(Field::comma_list("allowed_organizational_units", "globs one of its subject's OUs must match").clear())
            .field(Field::comma_list("required_extensions", "OID:glob pairs; each extension must be present with a matching string value").clear())
            .field(Field::string("display_name", "the tokens' display name").clear())
            .exists(|b, r| Box::pin(b.cert_exists(r)))
            .read(|b, r| Box::pin(b.read_cert(r)))
            .create(|b, r| Box::pin(b.write_cert(r)))
            .update(|b, r| Box::pin(b.write_cert(r)))
            .delete(|b, r| Box::pin(b.delete_cert(r))),
        P::new("crls")
            .summary("The CRLs logins are checked against.")
            .list(|b, r| Box::pin(b.list_crls(r))),
        P::new("crls/{name}")
            .summary("A CRL (PEM or DER as base64): certificates on it no longer log in.")
            .field(Field::string("crl", "the CRL, PEM").required())
            .read(|b, r| Box::pin(b.read_crl(r)))
            .update(|b, r| Box::pin(b.write_crl(r)))
            .delete(|b, r| Box::pin(b.delete_crl(r))),
    ]
}

fn name(req: &Request) -> Result<&str, Error> {
    let name = req.param("name")?;
    crate::engine::valid_name(name)?;
    Ok(name)
}

/// The one certificate in `pem`, as DER.
fn one_certificate(pem_text: &str) -> Result<CertificateDer<'static>, Error> {
    let bad = || Error::field("certificate", "certificate must be one PEM certificate");
    let parsed = pem::parse_many(pem_text.as_bytes()).map_err(|_| bad())?;
    let [block] = parsed.as_slice() else {
        return Err(bad());
    };
    if block.tag() != "CERTIFICATE" {
        return Err(bad());
    }
    let der = CertificateDer::from(block.contents().to_vec());
    if verify::names(der.as_ref()).is_none() {
        return Err(bad());
    }
    Ok(der)
}

/// A CRL given as PEM, as DER.
fn crl_der(text: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::field("crl", "crl must be one PEM X509 CRL");
    let block = pem::parse(text.as_bytes()).map_err(|_| bad())?;
    if block.tag() != "X509 CRL" {
        return Err(bad());
    }
    webpki::OwnedCertRevocationList::from_der(block.contents()).map_err(|_| bad())?;
    Ok(block.contents().to_vec())
}

impl CertBackend {
    async fn cert(&self, req: &Request, name: &str) -> Result<Option<CertRole>, Error> {
        Ok(req.mount.storage.get(&format!("cert/{name}")).await?)
    }

    async fn cert_exists(&self, req: &Request) -> Result<bool, Error> {
        Ok(self.cert(req, name(req)?).await?.is_some())
    }

    async fn list_certs(&self, req: &Request) -> Result<Reply, Error> {
        list(req.mount.storage.list("cert").await?)
    }

    async fn read_cert(&self, req: &Request) -> Result<Reply, Error> {
        let role = self
            .cert(req, name(req)?)
            .await?
            .ok_or_else(|| Error::NotFound(String::new()))?;
        let mut out = Map::new();
        out.insert("certificate".into(), json!(role.certificate));
        out.insert("allowed_common_names".into(), json!(role.allowed_common_names));
        out.insert("allowed_dns_sans".into(), json!(role.allowed_dns_sans));
        out.insert("allowed_email_sans".into(), json!(role.allowed_email_sans));
        out.insert("allowed_uri_sans".into(), json!(role.allowed_uri_sans));
        out.insert(
            "allowed_organizational_units".into(),
            json!(role.allowed_organizational_units),
        );
        out.insert("required_extensions".into(), json!(role.required_extensions));
        out.insert("display_name".into(), json!(role.display_name));
        role.token.describe(&mut out);
        Ok(data(Value::Object(out)))
    }

    async fn write_cert(&self, req: &Request) -> Result<Reply, Error> {
        let name = name(req)?;
        let mut role = self.cert(req, name).await?.unwrap_or_default();
        if let Some(pem) = req.str("certificate") {
            one_certificate(pem)?;
            role.certificate = pem.to_owned();
        }
        if role.certificate.is_empty() {
            return Err(Error::field("certificate", "certificate is required"));
        }
        if let Some(v) = req.list("allowed_common_names")? {
            role.allowed_common_names = v;
        }
        if let Some(v) = req.list("allowed_dns_sans")? {
            role.allowed_dns_sans = v;
        }
        if let Some(v) = req.list("allowed_email_sans")? {
            role.allowed_email_sans = v;
        }
        if let Some(v) = req.list("allowed_uri_sans")? {
            role.allowed_uri_sans = v;
        }
        if let Some(v) = req.list("allowed_organizational_units")? {
            role.allowed_organizational_units = v;
        }
        if let Some(v) = req.list("required_extensions")? {
            if let Some(bad) = v.iter().find(|r| !r.contains(':')) {
                return Err(Error::field(
                    "required_extensions",
                    format!("{bad:?} is not OID:value"),
                ));
            }
            role.required_extensions = v;
        }
        if let Some(d) = req.str("display_name") {
            role.display_name = d.to_owned();
        }
        role.token.update(req)?;
        req.mount.storage.put(&format!("cert/{name}"), &role).await?;
        Ok(no_content())
    }

    async fn delete_cert(&self, req: &Request) -> Result<Reply, Error> {
        req.mount.storage.delete(&format!("cert/{}", name(req)?)).await?;
        Ok(no_content())
    }

    async fn list_crls(&self, req: &Request) -> Result<Reply, Error> {
        list(req.mount.storage.list("crl").await?)
    }

    async fn read_crl(&self, req: &Request) -> Result<Reply, Error> {
        let crl: String = req
            .mount
            .storage
            .get(&format!("crl/{}", name(req)?))
            .await?
            .ok_or_else(|| Error::NotFound(String::new()))?;
        Ok(data(json!({ "crl": crl })))
    }

    async fn write_crl(&self, req: &Request) -> Result<Reply, Error> {
        let name = name(req)?;
        let text = req.str("crl").unwrap_or_default();
        crl_der(text)?;
        req.mount.storage.put(&format!("crl/{name}"), &text.to_owned()).await?;
        Ok(no_content())
    }

    async fn delete_crl(&self, req: &Request) -> Result<Reply, Error> {
        req.mount.storage.delete(&format!("crl/{}", name(req)?)).await?;
        Ok(no_content())
    }

    /// Every CRL configured on the mount, parsed (one that no longer
    /// parses is skipped, and said so in the log).
    async fn crls(&self, req: &Request) -> Result<Vec<webpki::OwnedCertRevocationList>, Error> {
        let mut out = Vec::new();
        for key in req.mount.storage.list("crl").await? {
            let Some(text) = req.mount.storage.get::<String>(&format!("crl/{key}")).await? else {
                continue;
            };
            match crl_der(&text)
                .ok()
                .and_then(|der| webpki::OwnedCertRevocationList::from_der(&der).ok())
            {
                Some(crl) => out.push(crl),
                None => tracing::warn!(crl = %key, "a stored CRL does not parse; it is skipped"),
            }
        }
        Ok(out)
    }

    async fn login(&self, req: &Request) -> Result<Reply, Error> {
        let Some(chain) = req.peer_certificates.clone().filter(|c| !c.is_empty()) else {
            return Err(refused());
        };
        let identity = hex::encode(sha2::Sha256::digest(chain[0].as_ref()));
        let mount = &req.mount.accessor;
        if self.lockout.locked(mount, &identity) {
            return Err(refused());
        }
        let names: Vec<String> = match req.str("name").filter(|n| !n.is_empty()) {
            Some(n) => vec![n.to_owned()],
            None => req.mount.storage.list("cert").await?,
        };
        let crls = self.crls(req).await?;
        let now = UnixTime::now();
        let leaf = verify::names(chain[0].as_ref()).unwrap_or_default();
        for cert_name in names {
            let Some(role) = self.cert(req, &cert_name).await? else {
                continue;
            };
            let Ok(configured) = one_certificate(&role.certificate) else {
                continue;
            };
            if !verify::proves(&chain, &configured, &crls, now) {
                continue;
            }
            if !role.admits(&leaf) {
                continue;
            }
            let cn = leaf.common_name.clone().unwrap_or_default();
            self.lockout.succeeded(mount, &identity);
            let meta = BTreeMap::from([
                ("cert_name".to_owned(), cert_name.clone()),
                ("common_name".to_owned(), cn),
                ("serial_number".to_owned(), leaf.serial.clone()),
            ]);
            let display = if role.display_name.is_empty() {
                cert_name.clone()
            } else {
                role.display_name.clone()
            };
            return login::issue(&self.services, req, &role.token, display, meta).await;
        }
        self.lockout.failed(mount, &identity);
        Err(refused())
    }
}

#[async_trait::async_trait]
impl TableBackend for CertBackend {
    fn description(&self) -> &'static str {
        "clients log in with the certificate they present over TLS"
    }

    fn table(&self) -> &Table<Self> {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_configured_constraint_must_match() {
        let leaf = verify::Names {
            common_name: Some("app".into()),
            dns: strings(&["app.example.com"]),
            emails: strings(&["ops@example.com"]),
            uris: strings(&["spiffe://example.com/app"]),
            organizational_units: strings(&["payments"]),
            extensions: vec![("1.2.3".into(), "prod".into())],
            serial: "01".into(),
        };
        let open = CertRole::default();
        assert!(open.admits(&leaf));
        type Set = fn(&mut CertRole, Vec<String>);
        let cases: [(Set, &str, &str); 6] = [
            (|r, v| r.allowed_common_names = v, "ap*", "web"),
            (|r, v| r.allowed_dns_sans = v, "*.example.com", "*.example.org"),
            (|r, v| r.allowed_email_sans = v, "*@example.com", "root@*"),
            (|r, v| r.allowed_uri_sans = v, "spiffe://example.com/*", "https://*"),
            (|r, v| r.allowed_organizational_units = v, "pay*", "eng"),
            (|r, v| r.required_extensions = v, "1.2.3:pr*", "1.2.3:dev"),
        ];
        for (set, good, bad) in cases {
            let mut role = CertRole::default();
            set(&mut role, strings(&[good]));
            assert!(role.admits(&leaf), "{good}");
            set(&mut role, strings(&[bad]));
            assert!(!role.admits(&leaf), "{bad}");
            // A leaf without that kind of name meets no such constraint.
            set(&mut role, strings(&["*"]));
            let bare = verify::Names {
                common_name: Some(String::new()),
                ..verify::Names::default()
            };
            let wants_cn = role.allowed_common_names == ["*"];
            assert_eq!(role.admits(&bare), wants_cn, "{good} on a bare leaf");
        }
    }
}
