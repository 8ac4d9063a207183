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

/// The names a leaf carries: its subject's common name, DNS names and URIs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    /// The subject's CN.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
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
        serial: cert.raw_serial_as_string().replace(':', "-"),
        ..Names::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::URI(u) => names.uris.push((*u).to_owned()),
                _ => {}
            }
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
