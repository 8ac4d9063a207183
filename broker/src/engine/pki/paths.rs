//! The PKI engine's paths, as Vault's PKI secrets engine has them. The CA
//! certificate, its chain, the CRL and stored certificates are public:
//! relying parties fetch them without a token.

use std::sync::Arc;

use serde_json::Value;

use super::{KeyMode, PEM, PkiEngine, crl_pem};
use crate::framework::{
    Access, Backend, Error, Field, Mount, Path, PatternError, Reply, Request, Services, Table,
    TableBackend, credential, data, list, no_content, secret,
};

/// Paths of this backend's table.
type P = Path<PkiBackend>;
use crate::lease::ResolvedConnection;

/// The `pki` mount type.
#[derive(Debug)]
pub struct PkiBackend {
    services: Services,
    table: Table<Self>,
}

/// Builds the backend: the registry's constructor for this mount type.
pub fn factory(services: &Services) -> Result<Arc<dyn Backend>, PatternError> {
    Ok(Arc::new(PkiBackend {
        services: services.clone(),
        table: Table::new(paths())?,
    }))
}

impl PkiBackend {
    fn engine(&self, mount: &Mount) -> PkiEngine {
        PkiEngine::new(mount, self.services.catalog.clone()).with_hsm(self.services.hsm.clone())
    }

    async fn read_crl_config(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(self.engine(&req.mount).crl_config().await?))
    }

    async fn write_crl_config(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount).set_crl_config(&req.data).await?;
        Ok(no_content())
    }

    async fn generate_root(&self, req: &Request, mode: KeyMode) -> Result<Reply, Error> {
        let ca = self
            .engine(&req.mount)
            .generate_root(&req.data, mode)
            .await?;
        Ok(if mode == KeyMode::Exported {
            credential(ca)
        } else {
            data(ca)
        })
    }

    async fn generate_intermediate(&self, req: &Request, mode: KeyMode) -> Result<Reply, Error> {
        let csr = self
            .engine(&req.mount)
            .generate_intermediate(&req.data, mode)
            .await?;
        Ok(if mode == KeyMode::Exported {
            credential(csr)
        } else {
            data(csr)
        })
    }

    async fn delete_ca(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount).delete_ca().await?;
        Ok(no_content())
    }

    async fn sign_intermediate(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(
            self.engine(&req.mount).sign_intermediate(&req.data).await?,
        ))
    }

    async fn import(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount).import(&req.data).await?;
        Ok(no_content())
    }

    async fn set_signed(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount).set_signed(&req.data).await?;
        Ok(no_content())
    }

    async fn ca_pem(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Raw {
            content_type: PEM,
            body: self
                .engine(&req.mount)
                .ca()
                .await?
                .certificate_pem()
                .as_bytes()
                .to_vec(),
        })
    }

    async fn ca_der(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Raw {
            content_type: "application/pkix-cert",
            body: self
                .engine(&req.mount)
                .ca()
                .await?
                .certificate_der()
                .to_vec(),
        })
    }

    async fn ca_chain(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Raw {
            content_type: PEM,
            body: self
                .engine(&req.mount)
                .ca()
                .await?
                .chain_pem()
                .concat()
                .into_bytes(),
        })
    }

    async fn crl_der(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Raw {
            content_type: "application/pkix-crl",
            body: self.engine(&req.mount).crl_der().await?,
        })
    }

    async fn crl_pem(&self, req: &Request) -> Result<Reply, Error> {
        Ok(Reply::Raw {
            content_type: "application/x-pem-file",
            body: crl_pem(&self.engine(&req.mount).crl_der().await?).into_bytes(),
        })
    }

    async fn cert(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(
            self.engine(&req.mount).cert(req.param("serial")?).await?,
        ))
    }

    async fn revoke(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(self.engine(&req.mount).revoke(&req.data).await?))
    }

    async fn tidy(&self, req: &Request) -> Result<Reply, Error> {
        Ok(data(self.engine(&req.mount).tidy(&req.data).await?))
    }

    async fn list_roles(&self, req: &Request) -> Result<Reply, Error> {
        list(self.engine(&req.mount).list_roles().await?)
    }

    async fn read_role(&self, req: &Request) -> Result<Reply, Error> {
        let role = self
            .engine(&req.mount)
            .read_role(req.param("name")?)
            .await?;
        Ok(data(Value::Object(role)))
    }

    /// Whether a write to `roles/{name}` creates it (policies grant
    /// `create` and `update` apart).
    async fn role_exists(&self, req: &Request) -> Result<bool, Error> {
        match self.engine(&req.mount).read_role(req.param("name")?).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn write_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .write_role(req.param("name")?, req.data.clone())
            .await?;
        Ok(no_content())
    }

    async fn delete_role(&self, req: &Request) -> Result<Reply, Error> {
        self.engine(&req.mount)
            .delete_role(req.param("name")?)
            .await?;
        Ok(no_content())
    }

    async fn issue(&self, req: &Request, endpoint: &'static str) -> Result<Reply, Error> {
        let issued = self
            .engine(&req.mount)
            .issue(
                &self.services.leases,
                endpoint,
                req.param("role")?,
                req.data.clone(),
                &req.caller.lease_owner(),
            )
            .await?;
        Ok(match issued.lease {
            Some(row) => secret(
                row.id.clone(),
                row.expires_at - row.issued_at,
                false,
                Value::Object(issued.data),
            ),
            None => credential(Value::Object(issued.data)),
        })
    }
}

const TTL: &str = "duration: seconds, or a string such as \"1h30m\"";

fn key_fields(path: Path<PkiBackend>) -> Path<PkiBackend> {
    path.field(
        Field::string("key_type", "ec, rsa or ed25519")
            .default("ec")
            .clear(),
    )
    .field(
        Field::int(
            "key_bits",
            "ec: 256, 384; rsa: 2048, 3072, 4096 (0: the type's default)",
        )
        .clear(),
    )
}

fn managed_key_fields(path: Path<PkiBackend>) -> Path<PkiBackend> {
    path.field(
        Field::string(
            "managed_key_name",
            "the label (CKA_LABEL) of the key pair to generate in the HSM",
        )
        .clear(),
    )
    .field(Field::string("managed_key_id", "the same label (managed_key_name wins)").clear())
}

fn paths() -> Vec<Path<PkiBackend>> {
    vec![
        key_fields(
            P::new("root/generate/internal")
                .summary("Generate the mount's root CA; its key never leaves the broker.")
                .field(
                    Field::string("common_name", "the CA's CN (at most 64 characters)").required(),
                )
                .field(Field::duration("ttl", TTL).clear()),
        )
        .update(|b, r| Box::pin(b.generate_root(r, KeyMode::Internal))),
        key_fields(
            P::new("root/generate/exported")
                .summary("Generate the mount's root CA and return its key, once.")
                .field(
                    Field::string("common_name", "the CA's CN (at most 64 characters)").required(),
                )
                .field(Field::duration("ttl", TTL).clear()),
        )
        .update(|b, r| Box::pin(b.generate_root(r, KeyMode::Exported))),
        managed_key_fields(key_fields(
            P::new("root/generate/kms")
                .summary(
                    "Generate the mount's root CA with its key pair in the HSM, which it never leaves.",
                )
                .field(
                    Field::string("common_name", "the CA's CN (at most 64 characters)").required(),
                )
                .field(Field::duration("ttl", TTL).clear()),
        ))
        .update(|b, r| Box::pin(b.generate_root(r, KeyMode::Kms))),
        P::new("root")
            .summary("Delete the mount's CA.")
            .delete(|b, r| Box::pin(b.delete_ca(r))),
        P::new("root/sign-intermediate")
            .summary("Sign an intermediate CA's CSR.")
            .field(Field::string("csr", "PEM").required())
            .field(Field::string("common_name", "overrides the CSR's"))
            .field(Field::duration("ttl", TTL).clear())
            .update(|b, r| Box::pin(b.sign_intermediate(r))),
        P::new("config/ca")
            .summary(
                "Import a CA: a PEM bundle with its certificate, its key and the chain above it.",
            )
            .field(
                Field::string("pem_bundle", "PEM certificates and key")
                    .sensitive()
                    .required(),
            )
            .update(|b, r| Box::pin(b.import(r))),
        key_fields(
            P::new("intermediate/generate/internal")
                .summary("Generate an intermediate CA's key and CSR.")
                .field(Field::string("common_name", "the CA's CN").required()),
        )
        .update(|b, r| Box::pin(b.generate_intermediate(r, KeyMode::Internal))),
        key_fields(
            P::new("intermediate/generate/exported")
                .summary("Generate an intermediate CA's key and CSR, returning the key once.")
                .field(Field::string("common_name", "the CA's CN").required()),
        )
        .update(|b, r| Box::pin(b.generate_intermediate(r, KeyMode::Exported))),
        managed_key_fields(key_fields(
            P::new("intermediate/generate/kms")
                .summary("Generate an intermediate CA's key pair in the HSM, and its CSR.")
                .field(Field::string("common_name", "the CA's CN").required()),
        ))
        .update(|b, r| Box::pin(b.generate_intermediate(r, KeyMode::Kms))),
        P::new("intermediate/set-signed")
            .summary("Install the signed intermediate certificate.")
            .field(
                Field::string("certificate", "PEM, optionally with the chain above it").required(),
            )
            .update(|b, r| Box::pin(b.set_signed(r))),
        P::new("ca/pem")
            .summary("The CA certificate, PEM.")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.ca_pem(r))),
        P::new("ca")
            .summary("The CA certificate, DER.")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.ca_der(r))),
        P::new("ca_chain")
            .summary("The CA certificate and those above it, PEM.")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.ca_chain(r))),
        P::new("cert/{serial}")
            .summary("A stored certificate by serial (also ca, ca_chain, crl).")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.cert(r))),
        P::new("crl")
            .summary("The CRL, DER.")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.crl_der(r))),
        P::new("crl/pem")
            .summary("The CRL, PEM.")
            .access(Access::Public)
            .read(|b, r| Box::pin(b.crl_pem(r))),
        P::new("config/crl")
            .summary("How long a CRL lasts, and whether the periodic pass rebuilds it before it expires (once across nodes).")
            .field(Field::duration("expiry", "a CRL's lifetime (default 72h)").clear())
            .field(Field::bool("auto_rebuild", "rebuild the CRL auto_rebuild_grace_period before it expires").clear())
            .field(
                Field::duration(
                    "auto_rebuild_grace_period",
                    "how long before expiry to rebuild (default 12h; less than expiry)",
                )
                .clear(),
            )
            .field(Field::bool("disable", "not supported: a CRL is always published").clear())
            .read(|b, r| Box::pin(b.read_crl_config(r)))
            .update(|b, r| Box::pin(b.write_crl_config(r))),
        P::new("revoke")
            .summary("Revoke a certificate by serial; the CRL is rebuilt.")
            .field(
                Field::string("serial_number", "aa:bb:… or hex")
                    .clear()
                    .required(),
            )
            .update(|b, r| Box::pin(b.revoke(r))),
        P::new("tidy")
            .summary("Remove expired certificates and CRL entries.")
            .field(
                Field::bool("tidy_cert_store", "drop expired stored certificates")
                    .default(true)
                    .clear(),
            )
            .field(
                Field::bool("tidy_revoked_certs", "drop expired CRL entries")
                    .default(true)
                    .clear(),
            )
            .field(
                Field::duration(
                    "safety_buffer",
                    "how long past expiry to keep them (default 72h)",
                )
                .clear(),
            )
            .update(|b, r| Box::pin(b.tidy(r))),
        P::new("roles")
            .summary("List roles.")
            .list(|b, r| Box::pin(b.list_roles(r))),
        role_fields(
            P::new("roles/{name}")
                .summary("A role: which names, keys and lifetimes its certificates may have."),
        )
        .read(|b, r| Box::pin(b.read_role(r)))
        .exists(|b, r| Box::pin(b.role_exists(r)))
        .create(|b, r| Box::pin(b.write_role(r)))
        .update(|b, r| Box::pin(b.write_role(r)))
        .delete(|b, r| Box::pin(b.delete_role(r))),
        issue_fields(
            P::new("issue/{role}")
                .summary("A key pair and a certificate for it, within the role's policy."),
        )
        .update(|b, r| Box::pin(b.issue(r, "issue"))),
        issue_fields(
            P::new("sign/{role}")
                .summary("A certificate for a CSR's key, within the role's policy.")
                .field(Field::string("csr", "PEM; its signature is checked").required()),
        )
        .update(|b, r| Box::pin(b.issue(r, "sign"))),
    ]
}

fn role_fields(path: Path<PkiBackend>) -> Path<PkiBackend> {
    key_fields(path)
        .field(Field::comma_list("allowed_domains", "domains names must fall under").clear())
        .field(Field::bool("allow_subdomains", "names below allowed_domains").clear())
        .field(Field::bool("allow_bare_domains", "the allowed domains themselves").clear())
        .field(Field::bool("allow_glob_domains", "allowed_domains may hold globs").clear())
        .field(
            Field::bool("allow_localhost", "localhost")
                .default(true)
                .clear(),
        )
        .field(
            Field::bool("allow_ip_sans", "IP SANs")
                .default(true)
                .clear(),
        )
        .field(Field::comma_list("allowed_uri_sans", "URI SANs allowed (globs)").clear())
        .field(Field::bool("allow_any_name", "any DNS name").clear())
        .field(
            Field::bool("enforce_hostnames", "names must be hostnames")
                .default(true)
                .clear(),
        )
        .field(Field::duration("ttl", TTL).clear())
        .field(Field::duration("max_ttl", TTL).clear())
        .field(
            Field::bool("server_flag", "serverAuth")
                .default(true)
                .clear(),
        )
        .field(
            Field::bool("client_flag", "clientAuth")
                .default(true)
                .clear(),
        )
        .field(Field::duration("not_before_duration", TTL).clear())
        .field(
            Field::bool("require_cn", "a CN is required")
                .default(true)
                .clear(),
        )
        .field(Field::bool("no_store", "do not keep issued certificates").clear())
        .field(
            Field::bool(
                "generate_lease",
                "issue under a lease; revoking it revokes the certificate",
            )
            .clear(),
        )
}

fn issue_fields(path: Path<PkiBackend>) -> Path<PkiBackend> {
    path.field(Field::string("common_name", "the CN"))
        .field(Field::string("alt_names", "DNS names, comma-separated"))
        .field(Field::string("ip_sans", "IP addresses, comma-separated"))
        .field(Field::string("uri_sans", "URIs, comma-separated"))
        .field(Field::duration("ttl", TTL).clear())
        .field(Field::bool("exclude_cn_from_sans", "leave the CN out of the SANs").clear())
}

#[async_trait::async_trait]
impl TableBackend for PkiBackend {
    fn description(&self) -> &'static str {
        "a CA per mount: certificates built by the pki plugin, signed in the host"
    }

    fn table(&self) -> &Table<Self> {
        &self.table
    }

    async fn connection(&self, mount: &Mount, _name: &str) -> Option<ResolvedConnection> {
        self.engine(mount).connection_now().await
    }

    async fn periodic(&self, mount: &Mount, now: i64) {
        self.engine(mount).periodic(now).await;
    }
}
