//! Requests to a `pki` mount.

use axum::http::StatusCode;
use serde_json::Value;

use super::envelope::{ApiError, Reply, credential, data, no_content, secret};
use super::{Operation, Request};
use crate::core::{Core, MountEntry};

const PEM: &str = "application/pem-certificate-chain";

/// Paths of a PKI mount anyone may read, as in Vault: the CA and the CRL
/// are what relying parties fetch, without a token.
pub(crate) fn is_public(kind: &str, rest: &str) -> bool {
    let rest = rest.trim_matches('/');
    kind == "pki"
        && (matches!(rest, "ca" | "ca/pem" | "ca_chain" | "crl" | "crl/pem")
            || rest.starts_with("cert/"))
}

pub(crate) async fn handle(
    core: &Core,
    mount: &str,
    entry: &MountEntry,
    rest: &str,
    req: Request,
) -> Result<Reply, ApiError> {
    let pki = core.pki(mount);
    let body = req.body;
    match (req.op, rest) {
        (Operation::Write, "root/generate/internal") => {
            Ok(data(pki.generate_root(&body, false).await?))
        }
        (Operation::Write, "root/generate/exported") => {
            Ok(credential(pki.generate_root(&body, true).await?))
        }
        (Operation::Delete, "root") => {
            pki.delete_ca().await?;
            Ok(no_content())
        }
        (Operation::Write, "root/sign-intermediate") => {
            Ok(data(pki.sign_intermediate(&body).await?))
        }
        (Operation::Write, "config/ca") => {
            pki.import(&body).await?;
            Ok(no_content())
        }
        (Operation::Write, "intermediate/generate/internal") => {
            Ok(data(pki.generate_intermediate(&body, false).await?))
        }
        (Operation::Write, "intermediate/generate/exported") => {
            Ok(credential(pki.generate_intermediate(&body, true).await?))
        }
        (Operation::Write, "intermediate/set-signed") => {
            pki.set_signed(&body).await?;
            Ok(no_content())
        }
        (Operation::Read, "ca/pem") => Ok(Reply::Raw {
            content_type: PEM,
            body: pki.ca().await?.certificate_pem().as_bytes().to_vec(),
        }),
        (Operation::Read, "ca") => Ok(Reply::Raw {
            content_type: "application/pkix-cert",
            body: pki.ca().await?.certificate_der().to_vec(),
        }),
        (Operation::Read, "ca_chain") => Ok(Reply::Raw {
            content_type: PEM,
            body: pki.ca().await?.chain_pem().concat().into_bytes(),
        }),
        (Operation::Read, "crl") => Ok(Reply::Raw {
            content_type: "application/pkix-crl",
            body: pki.crl_der().await?,
        }),
        (Operation::Read, "crl/pem") => Ok(Reply::Raw {
            content_type: "application/x-pem-file",
            body: crate::engine::pki::crl_pem(&pki.crl_der().await?).into_bytes(),
        }),
        (Operation::Read, r) if r.starts_with("cert/") => {
            match pki.cert(r.trim_start_matches("cert/")).await {
                Ok(v) => Ok(data(v)),
                Err(crate::engine::EngineError::NotFound(_)) => {
                    Err(ApiError::new(StatusCode::NOT_FOUND, ""))
                }
                Err(e) => Err(e.into()),
            }
        }
        (Operation::Write, "revoke") => Ok(data(pki.revoke(&body).await?)),
        (Operation::Write, "tidy") => Ok(data(pki.tidy(&body).await?)),
        (Operation::List, "roles" | "roles/") => {
            let keys = pki.list_roles().await?;
            if keys.is_empty() {
                return Err(ApiError::new(StatusCode::NOT_FOUND, ""));
            }
            Ok(data(serde_json::json!({ "keys": keys })))
        }
        (op, r) if r.starts_with("roles/") => {
            let name = r.trim_start_matches("roles/");
            match op {
                Operation::Write => {
                    pki.write_role(name, body).await?;
                    Ok(no_content())
                }
                Operation::Read => match pki.read_role(name).await {
                    Ok(role) => Ok(data(Value::Object(role))),
                    Err(crate::engine::EngineError::BadRequest(_)) => {
                        Err(ApiError::new(StatusCode::NOT_FOUND, ""))
                    }
                    Err(e) => Err(e.into()),
                },
                Operation::Delete => {
                    pki.delete_role(name).await?;
                    Ok(no_content())
                }
                Operation::List => Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("unsupported operation on {mount}/{r}"),
                )),
            }
        }
        (Operation::Write, r) if r.starts_with("issue/") || r.starts_with("sign/") => {
            let (endpoint, role) = match r.strip_prefix("issue/") {
                Some(role) => ("issue", role),
                None => ("sign", r.trim_start_matches("sign/")),
            };
            let issued = pki
                .issue(core.leases(), endpoint, role, body, Core::ttls(entry))
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
        (
            _,
            "root/generate/internal"
            | "root/generate/exported"
            | "root"
            | "root/sign-intermediate"
            | "config/ca"
            | "intermediate/generate/internal"
            | "intermediate/generate/exported"
            | "intermediate/set-signed"
            | "ca/pem"
            | "ca"
            | "ca_chain"
            | "crl"
            | "crl/pem"
            | "revoke"
            | "tidy"
            | "roles",
        ) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("unsupported operation on {mount}/{rest}"),
        )),
        (_, r) if r.starts_with("cert/") || r.starts_with("issue/") || r.starts_with("sign/") => {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("unsupported operation on {mount}/{rest}"),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no handler for route \"{mount}/{rest}\""),
        )),
    }
}
