//! Checking a presented chain against one configured certificate. Pure
//! functions of their inputs, so they are tested without a listener.

use rustls::pki_types::{CertificateDer, UnixTime};
use webpki::{
    CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};

/// Whether `der` is a CA certificate (basic constraints, CA true). A
/// certificate that does not parse is no CA.
pub fn is_ca(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, cert)| cert.basic_constraints().ok().flatten().map(|bc| bc.value.ca))
        .unwrap_or(false)
}

/// What a leaf says about its holder, for a configured certificate's
/// constraints to be checked against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    /// The subject's CN.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// Email (RFC 822) subject alternative names.
    pub emails: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The subject's organizational units.
    pub organizational_units: Vec<String>,
    /// Extensions whose value is an ASN.1 string: (dotted OID, the string).
    pub extensions: Vec<(String, String)>,
    /// The serial number, hex.
    pub serial: String,
}

/// The names in `der`, if it parses.
pub fn names(der: &[u8]) -> Option<Names> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names = Names {
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned),
        organizational_units: cert
            .subject()
            .iter_organizational_unit()
            .filter_map(|ou| ou.as_str().ok())
            .map(str::to_owned)
            .collect(),
        serial: cert.raw_serial_as_string().replace(':', "-"),
        ..Names::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                GeneralName::RFC822Name(e) => names.emails.push((*e).to_owned()),
                GeneralName::URI(u) => names.uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    for ext in cert.extensions() {
        // Vault's `required_extensions` compare the value as a string;
        // an extension whose value is not one matches no pattern.
        if let Ok((_, value)) = x509_parser::der_parser::parse_der(ext.value)
            && let Ok(text) = value.as_str()
        {
            names.extensions.push((ext.oid.to_id_string(), text.to_owned()));
        }
    }
    Some(names)
}

/// Whether `chain` (leaf first) proves the identity `configured` stands
/// for: a chain built to it when it is a CA (checked against `crls`), the
/// very certificate when it is not.
pub fn proves(
    chain: &[CertificateDer<'_>],
    configured: &CertificateDer<'_>,
    crls: &[OwnedCertRevocationList],
    now: UnixTime,
) -> bool {
    let Some(leaf) = chain.first() else {
        return false;
    };
    let Ok(end_entity) = EndEntityCert::try_from(leaf) else {
        return false;
    };
    if !is_ca(configured) {
        // Pinned: this leaf and no other, still within its validity.
        if leaf.as_ref() != configured.as_ref() {
            return false;
        }
        return within_validity(leaf.as_ref(), now);
    }
    let Ok(anchor) = webpki::anchor_from_trusted_cert(configured) else {
        return false;
    };
    let lists: Vec<CertRevocationList<'_>> = crls
        .iter()
        .cloned()
        .map(CertRevocationList::Owned)
        .collect();
    let refs: Vec<&CertRevocationList<'_>> = lists.iter().collect();
    let revocation = RevocationOptionsBuilder::new(&refs).ok().map(|b| {
        b.with_depth(RevocationCheckDepth::Chain)
            // A chain through a CA no CRL covers is not thereby refused.
            .with_status_policy(UnknownStatusPolicy::Allow)
            .build()
    });
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            chain.get(1..).unwrap_or_default(),
            now,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .is_ok()
}

fn within_validity(der: &[u8], now: UnixTime) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

/// Whether `value` matches any of `patterns` (`*` matches any run of
/// characters); no patterns allow anything.
pub fn allowed(patterns: &[String], value: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p, value))
}

/// Whether one of `values` matches one of `patterns`; no patterns allow
/// anything, even a leaf without such values.
pub fn any_allowed(patterns: &[String], values: &[String]) -> bool {
    patterns.is_empty() || values.iter().any(|v| allowed(patterns, v))
}

/// Whether `leaf` carries every extension `required` names, each written
/// `OID:glob` as Vault's `required_extensions`. A requirement without a
/// colon is met by no certificate.
pub fn has_extensions(required: &[String], leaf: &Names) -> bool {
    required.iter().all(|r| {
        r.split_once(':').is_some_and(|(oid, pattern)| {
            leaf.extensions
                .iter()
                .any(|(o, v)| o == oid.trim() && glob(pattern, v))
        })
    })
}

/// `*` matches any run of bytes: one pass with backtracking to the last
/// star only, so a pattern of many stars costs no more than one.
fn glob(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((s, mark)) = star {
            pi = s + 1;
            vi = mark + 1;
            star = Some((s, mark + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_vault_writes_them() {
        assert!(allowed(&[], "anything"));
        assert!(allowed(&["web.example.com".into()], "web.example.com"));
        assert!(allowed(&["*.example.com".into()], "a.example.com"));
        assert!(!allowed(&["*.example.com".into()], "example.com"));
        assert!(allowed(&["svc-*-prod".into()], "svc-api-prod"));
        assert!(!allowed(&["svc-*-prod".into()], "svc-api-dev"));
    }

    #[test]
    fn junk_proves_nothing() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        assert!(!is_ca(junk.as_ref()));
        assert!(names(junk.as_ref()).is_none());
        assert!(!proves(std::slice::from_ref(&junk), &junk, &[], UnixTime::now()));
        assert!(!proves(&[], &junk, &[], UnixTime::now()));
    }

    /// A leaf with every kind of name a constraint can look at.
    fn rich_leaf() -> Vec<u8> {
        use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, SanType};
        let mut params = CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "app");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "payments");
        params
            .subject_alt_names
            .push(SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
        params
            .subject_alt_names
            .push(SanType::URI("spiffe://example.com/app".try_into().unwrap()));
        // A UTF8String, as Vault's required_extensions expect.
        let mut content = vec![0x0c, 4];
        content.extend_from_slice(b"prod");
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 7], content));
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_carry_emails_units_and_string_extensions() {
        let names = names(&rich_leaf()).unwrap();
        assert_eq!(names.common_name.as_deref(), Some("app"));
        assert_eq!(names.dns, ["app.example.com"]);
        assert_eq!(names.emails, ["ops@example.com"]);
        assert_eq!(names.uris, ["spiffe://example.com/app"]);
        assert_eq!(names.organizational_units, ["payments"]);
        assert!(
            names
                .extensions
                .contains(&("1.3.6.1.4.1.55555.7".to_owned(), "prod".to_owned())),
            "{:?}",
            names.extensions
        );
        let req = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(has_extensions(&[], &names));
        assert!(has_extensions(&req(&["1.3.6.1.4.1.55555.7:prod"]), &names));
        assert!(has_extensions(&req(&["1.3.6.1.4.1.55555.7:pr*"]), &names));
        assert!(!has_extensions(&req(&["1.3.6.1.4.1.55555.7:dev"]), &names));
        assert!(!has_extensions(&req(&["1.3.6.1.4.1.55555.8:*"]), &names));
        assert!(!has_extensions(&req(&["1.3.6.1.4.1.55555.7"]), &names));
        assert!(any_allowed(&[], &[]));
        assert!(!any_allowed(&req(&["*"]), &[]));
        assert!(any_allowed(&req(&["*@example.com"]), &names.emails));
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic_the_parsers(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let der = CertificateDer::from(bytes);
            let _ = is_ca(der.as_ref());
            let _ = names(der.as_ref());
            let _ = proves(std::slice::from_ref(&der), &der, &[], UnixTime::now());
        }

        #[test]
        fn globs_never_panic(p in "[a-z*.]{0,12}", v in "[a-z.]{0,16}") {
            let _ = allowed(&[p], &v);
        }
    }
}
