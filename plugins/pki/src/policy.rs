//! Which names a role allows, with Vault's role fields and semantics.
//! Pure functions: the tests run on the host.

use std::net::IpAddr;

/// The longest CN X.509 allows (ub-common-name).
pub const MAX_CN_LEN: usize = 64;

/// The name fields of a role.
#[derive(Debug, Clone, Default)]
pub struct NamePolicy {
    /// Domains names must fall under (globs when `allow_glob_domains`).
    pub allowed_domains: Vec<String>,
    /// Names below an allowed domain.
    pub allow_subdomains: bool,
    /// An allowed domain itself.
    pub allow_bare_domains: bool,
    /// `allowed_domains` may hold `*` globs.
    pub allow_glob_domains: bool,
    /// `localhost` and `localhost.localdomain`.
    pub allow_localhost: bool,
    /// Any name at all (still a hostname when `enforce_hostnames`).
    pub allow_any_name: bool,
    /// Names must be hostnames.
    pub enforce_hostnames: bool,
    /// `*.example.com` forms.
    pub allow_wildcard_certificates: bool,
}

/// `*` in `pattern` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

fn check_hostname(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{name:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{name:?} is not a valid hostname: use letters, digits and '-' in labels of 1 to 63 characters (IDNs in their xn-- form)"
            ));
        }
    }
    // No top-level domain is numeric: this catches 127.1 and 10.0.0.1.
    if labels
        .last()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{name:?} looks like an IP address: put addresses in ip_sans"
        ));
    }
    Ok(())
}

impl NamePolicy {
    /// Checks a DNS name (or CN) against the role; the normalized name.
    pub fn check(&self, raw: &str) -> Result<String, String> {
        if raw.chars().any(|c| c.is_control()) {
            return Err("names must not contain control characters".into());
        }
        if raw.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "{raw:?} is an IP address: put addresses in ip_sans"
            ));
        }
        if raw.contains("://") || raw.contains('/') || raw.contains('@') {
            return Err(format!("{raw:?} is not a DNS name: put URIs in uri_sans"));
        }
        if !raw.is_ascii() {
            return Err(format!(
                "{raw:?} has non-ASCII characters: give an internationalized name in its xn-- form"
            ));
        }
        let name = raw.to_ascii_lowercase();
        let (wildcard, base) = match name.strip_prefix("*.") {
            Some(base) => (true, base),
            None => (false, name.as_str()),
        };
        if base.contains('*') {
            return Err(format!(
                "{raw:?}: a wildcard may only be the whole leftmost label (*.example.com)"
            ));
        }
        if wildcard && !self.allow_wildcard_certificates {
            return Err(format!(
                "{raw:?}: this role does not issue wildcard certificates"
            ));
        }
        if self.enforce_hostnames {
            check_hostname(base)?;
        }
        if self.allow_any_name {
            return Ok(name);
        }
        if !wildcard
            && self.allow_localhost
            && (base == "localhost" || base == "localhost.localdomain")
        {
            return Ok(name);
        }
        for domain in &self.allowed_domains {
            let domain = domain.to_ascii_lowercase();
            if self.allow_glob_domains && domain.contains('*') {
                if glob(&domain, &name) {
                    return Ok(name);
                }
                continue;
            }
            let bare = base == domain;
            let below = base
                .strip_suffix(&domain)
                .is_some_and(|head| head.ends_with('.'));
            // A wildcard covers names one level below `base`.
            if wildcard {
                if self.allow_subdomains && (bare || below) {
                    return Ok(name);
                }
            } else if (bare && self.allow_bare_domains) || (below && self.allow_subdomains) {
                return Ok(name);
            }
        }
        Err(format!("{raw:?} is not allowed by this role"))
    }
}

/// Checks an IP SAN.
pub fn check_ip(raw: &str, allowed: bool) -> Result<IpAddr, String> {
    if !allowed {
        return Err("this role does not allow IP SANs".into());
    }
    raw.trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("{raw:?} is not an IP address"))
}

/// Checks a URI SAN against the role's `allowed_uri_sans` globs.
pub fn check_uri(raw: &str, allowed: &[String]) -> Result<String, String> {
    let uri = raw.trim();
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && !rest.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    });
    if !scheme_ok || uri.chars().any(|c| c.is_control() || c.is_whitespace()) || !uri.is_ascii() {
        return Err(format!("{raw:?} is not a URI"));
    }
    if !allowed.iter().any(|p| glob(p, uri)) {
        return Err(format!(
            "{raw:?} is not allowed by this role's allowed_uri_sans"
        ));
    }
    Ok(uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role() -> NamePolicy {
        NamePolicy {
            allowed_domains: vec!["example.com".into()],
            allow_subdomains: true,
            allow_localhost: true,
            enforce_hostnames: true,
            allow_wildcard_certificates: true,
            ..NamePolicy::default()
        }
    }

    #[test]
    fn subdomains_bare_domains_and_wildcards() {
        let r = role();
        assert_eq!(r.check("API.example.com").unwrap(), "api.example.com");
        assert!(r.check("a.b.example.com").is_ok());
        assert!(r.check("*.example.com").is_ok());
        assert!(
            r.check("example.com").is_err(),
            "bare needs allow_bare_domains"
        );
        assert!(r.check("badexample.com").is_err());
        assert!(r.check("example.com.evil.net").is_err());
        assert!(r.check("localhost").is_ok());
        assert!(r.check("*").is_err());
        assert!(r.check("*.*.example.com").is_err());
        assert!(r.check("f*o.example.com").is_err());
        assert!(r.check("*.com").is_err());
    }

    #[test]
    fn tricks_are_refused() {
        let r = role();
        for bad in [
            "10.0.0.1",
            "::1",
            "127.1",
            "https://a.example.com",
            "a.example.com/x",
            "user@a.example.com",
            "a\0.example.com",
            "exаmple.com", // Cyrillic а
            "a..example.com",
            "-a.example.com",
        ] {
            assert!(r.check(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn globs() {
        let r = NamePolicy {
            allowed_domains: vec!["*.svc.example.com".into()],
            allow_glob_domains: true,
            enforce_hostnames: true,
            ..NamePolicy::default()
        };
        assert!(r.check("db.svc.example.com").is_ok());
        assert!(r.check("db.svc.example.org").is_err());
        assert!(glob("spiffe://cluster/*", "spiffe://cluster/ns/app"));
        assert!(!glob("spiffe://cluster/*", "spiffe://other/ns"));
    }

    #[test]
    fn uris_and_ips() {
        let allowed = vec!["spiffe://example/*".to_owned()];
        assert!(check_uri("spiffe://example/app", &allowed).is_ok());
        assert!(check_uri("spiffe://evil/app", &allowed).is_err());
        assert!(check_uri("not a uri", &allowed).is_err());
        assert!(check_ip("10.1.2.3", true).is_ok());
        assert!(check_ip("10.1.2.3", false).is_err());
        assert!(check_ip("example.com", true).is_err());
    }
}
