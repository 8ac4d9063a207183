//! The checks a verified JWT's claims must pass for a role, with strict
//! types: a time claim that is not a number, an `aud` that is neither a
//! string nor an array of strings, is refused, never taken as absent (the
//! class of CVE-2026-25537 and CVE-2024-5798).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Refusal;
use super::role::{ClaimsType, Role, effective};

/// Default leeways (seconds), as Vault's.
const CLOCK_SKEW: i64 = 60;
const EXPIRATION: i64 = 150;
const NOT_BEFORE: i64 = 150;

/// What a login that passed the checks is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The user claim's value.
    pub user: String,
    /// The mapped claims, by metadata key.
    pub metadata: BTreeMap<String, String>,
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (none included) and nothing else is special.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen, and where in `text` its run ends for now.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` take one more character and try again.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The claim `name`: a top-level claim, or with `pointer`, a JSON pointer
/// (RFC 6901) into the claims.
pub fn lookup<'a>(claims: &'a Map<String, Value>, name: &str, pointer: bool) -> Option<&'a Value> {
    if !pointer {
        return claims.get(name);
    }
    let mut tokens = name.strip_prefix('/')?.split('/').map(|t| t.replace("~1", "/").replace("~0", "~"));
    let mut value = claims.get(&tokens.next()?)?;
    for token in tokens {
        value = match value {
            Value::Object(m) => m.get(&token)?,
            Value::Array(items) => {
                if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
                    return None;
                }
                items.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// A scalar claim as text: strings, numbers and booleans.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A NumericDate claim, if present; any type but a number is refused.
fn time(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    // Saturates: a date past i64 is simply far away.
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(Refusal::ClaimType(name)),
        Some(_) => Err(Refusal::ClaimType(name)),
    }
}

/// The token's audiences: `aud` as a string or an array of strings (empty
/// when absent). Anything else is refused.
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, Refusal> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or(Refusal::ClaimType("aud")))
            .collect(),
        Some(_) => Err(Refusal::ClaimType("aud")),
    }
}

fn check_times(role: &Role, claims: &Map<String, Value>, now: i64) -> Result<(), Refusal> {
    let skew = effective(role.clock_skew_leeway, CLOCK_SKEW);
    let exp = time(claims, "exp")?.ok_or(Refusal::Expired)?;
    if now > exp.saturating_add(skew).saturating_add(effective(role.expiration_leeway, EXPIRATION)) {
        return Err(Refusal::Expired);
    }
    let early = skew.saturating_add(effective(role.not_before_leeway, NOT_BEFORE));
    for name in ["nbf", "iat"] {
        if let Some(t) = time(claims, name)?
            && now.saturating_add(early) < t
        {
            return Err(Refusal::NotYetValid);
        }
    }
    Ok(())
}

fn check_bound_claims(role: &Role, claims: &Map<String, Value>) -> Result<(), Refusal> {
    for (name, expected) in &role.bound_claims {
        let refused = || Refusal::BoundClaim(name.clone());
        let value = lookup(claims, name, name.starts_with('/')).ok_or_else(refused)?;
        let actual: Vec<String> = match value {
            Value::Array(items) => items.iter().filter_map(text).collect(),
            v => text(v).into_iter().collect(),
        };
        let matched = actual.iter().any(|a| {
            expected.values().iter().any(|e| match role.bound_claims_type {
                ClaimsType::String => a == e,
                ClaimsType::Glob => glob(e, a),
            })
        });
        if !matched {
            return Err(refused());
        }
    }
    Ok(())
}

/// Checks a verified token's `claims` against `role` at `now`; `issuers`
/// are the issuers `iss` must equal (the bound one, the discovered one).
pub fn check(
    role: &Role,
    issuers: &[&str],
    claims: &Map<String, Value>,
    now: i64,
) -> Result<Checked, Refusal> {
    check_times(role, claims, now)?;
    if !issuers.is_empty() {
        let iss = match claims.get("iss") {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err(Refusal::Issuer),
        };
        if issuers.iter().any(|i| *i != iss) {
            return Err(Refusal::Issuer);
        }
    }
    let aud = audiences(claims)?;
    if role.bound_audiences.is_empty() {
        // A token meant for someone must be bound to them (as Vault).
        if !aud.is_empty() {
            return Err(Refusal::Audience);
        }
    } else if !aud
        .iter()
        .any(|a| role.bound_audiences.iter().any(|b| b == a))
    {
        return Err(Refusal::Audience);
    }
    if !role.bound_subject.is_empty() {
        match claims.get("sub") {
            Some(Value::String(s)) if *s == role.bound_subject => {}
            _ => return Err(Refusal::Subject),
        }
    }
    check_bound_claims(role, claims)?;
    let user = lookup(claims, &role.user_claim, role.user_claim_json_pointer)
        .filter(|v| v.is_string() || v.is_number())
        .and_then(text)
        .filter(|u| !u.is_empty())
        .ok_or(Refusal::UserClaim)?;
    let mut metadata = BTreeMap::new();
    for (claim, key) in &role.claim_mappings {
        if let Some(v) = lookup(claims, claim, claim.starts_with('/')) {
            let t = text(v).ok_or_else(|| Refusal::ClaimMapping(claim.clone()))?;
            metadata.insert(key.clone(), t);
        }
    }
    Ok(Checked { user, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::role::Expected;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(mut m) = v else { panic!() };
        m.entry("exp").or_insert(json!(NOW + 600));
        m
    }

    fn role() -> Role {
        Role {
            bound_audiences: vec!["vault".into()],
            ..Role::default()
        }
    }

    #[test]
    fn glob_matches_stars_only() {
        assert!(glob("*", ""));
        assert!(glob("*", "anything"));
        assert!(glob("refs/heads/*", "refs/heads/main"));
        assert!(glob("refs/heads/*", "refs/heads/"));
        assert!(!glob("refs/heads/*", "refs/tags/v1"));
        assert!(glob("repo:org/*:ref:refs/heads/main", "repo:org/app:ref:refs/heads/main"));
        assert!(!glob("repo:org/*:ref:refs/heads/main", "repo:org/app:ref:refs/heads/dev"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
        assert!(glob("a?b", "a?b"));
        assert!(!glob("a?b", "axb"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
        assert!(glob("**", "x"));
    }

    #[test]
    fn pointers_reach_nested_claims() {
        let c = claims(json!({
            "kubernetes.io": { "namespace": "ci", "serviceaccount": { "name": "runner" } },
            "a/b": { "~x": 1 }, "list": ["p", "q"],
        }));
        assert_eq!(lookup(&c, "/kubernetes.io/namespace", true), Some(&json!("ci")));
        assert_eq!(
            lookup(&c, "/kubernetes.io/serviceaccount/name", true),
            Some(&json!("runner"))
        );
        assert_eq!(lookup(&c, "/a~1b/~0x", true), Some(&json!(1)));
        assert_eq!(lookup(&c, "/list/1", true), Some(&json!("q")));
        assert_eq!(lookup(&c, "/list/01", true), None);
        assert_eq!(lookup(&c, "/list/+1", true), None);
        assert_eq!(lookup(&c, "/list/9", true), None);
        assert_eq!(lookup(&c, "/missing/x", true), None);
        assert_eq!(lookup(&c, "no-slash", true), None);
        assert_eq!(lookup(&c, "/kubernetes.io/namespace", false), None);
    }

    #[test]
    fn times_are_checked_with_leeway_and_strict_types() {
        let r = role();
        let ok = |c: Value| check(&r, &[], &claims(c), NOW);
        assert!(ok(json!({ "aud": "vault", "sub": "x" })).is_ok());
        // Within the default leeways (60 + 150).
        assert!(ok(json!({ "aud": "vault", "sub": "x", "exp": NOW - 200 })).is_ok());
        assert_eq!(
            ok(json!({ "aud": "vault", "sub": "x", "exp": NOW - 211 })).unwrap_err(),
            Refusal::Expired
        );
        assert!(ok(json!({ "aud": "vault", "sub": "x", "nbf": NOW + 200 })).is_ok());
        assert_eq!(
            ok(json!({ "aud": "vault", "sub": "x", "nbf": NOW + 211 })).unwrap_err(),
            Refusal::NotYetValid
        );
        assert_eq!(
            ok(json!({ "aud": "vault", "sub": "x", "iat": NOW + 1000 })).unwrap_err(),
            Refusal::NotYetValid
        );
        // Fractional dates are dates.
        assert!(ok(json!({ "aud": "vault", "sub": "x", "exp": (NOW + 10) as f64 + 0.5 })).is_ok());
        // Wrong types are refused, never taken as absent.
        for c in [
            json!({ "aud": "vault", "sub": "x", "exp": "99999999999" }),
            json!({ "aud": "vault", "sub": "x", "nbf": "99999999999" }),
            json!({ "aud": "vault", "sub": "x", "iat": [1] }),
            json!({ "aud": "vault", "sub": "x", "exp": null }),
        ] {
            assert!(matches!(ok(c.clone()), Err(Refusal::ClaimType(_))), "{c}");
        }
        // No exp: refused.
        let mut c = claims(json!({ "aud": "vault", "sub": "x" }));
        c.remove("exp");
        assert_eq!(check(&r, &[], &c, NOW).unwrap_err(), Refusal::Expired);
        // No leeway at all.
        let strict = Role {
            clock_skew_leeway: -1,
            expiration_leeway: -1,
            not_before_leeway: -1,
            ..role()
        };
        let c = claims(json!({ "aud": "vault", "sub": "x", "exp": NOW - 1 }));
        assert_eq!(check(&strict, &[], &c, NOW).unwrap_err(), Refusal::Expired);
    }

    #[test]
    fn audiences_issuer_and_subject() {
        let r = role();
        let go = |r: &Role, c: Value| check(r, &["https://issuer"], &claims(c), NOW);
        let base = json!({ "iss": "https://issuer", "sub": "x" });
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            v
        };
        assert!(go(&r, with(json!({ "aud": "vault" }))).is_ok());
        assert!(go(&r, with(json!({ "aud": ["other", "vault"] }))).is_ok());
        for bad in [
            json!({ "aud": "other" }),
            json!({ "aud": ["other"] }),
            json!({ "aud": [] }),
            json!({}),
        ] {
            assert_eq!(go(&r, with(bad)).unwrap_err(), Refusal::Audience);
        }
        for bad in [
            json!({ "aud": ["vault", 1] }),
            json!({ "aud": [["vault"]] }),
            json!({ "aud": { "vault": true } }),
            json!({ "aud": 7 }),
            json!({ "aud": null }),
        ] {
            assert_eq!(go(&r, with(bad)).unwrap_err(), Refusal::ClaimType("aud"));
        }
        // A role bound to no audience refuses a token that has one.
        let unbound = Role {
            bound_audiences: vec![],
            bound_subject: "x".into(),
            ..Role::default()
        };
        assert_eq!(go(&unbound, with(json!({ "aud": "vault" }))).unwrap_err(), Refusal::Audience);
        assert!(go(&unbound, base.clone()).is_ok());
        // Issuer.
        let mut wrong = with(json!({ "aud": "vault" }));
        wrong["iss"] = json!("https://evil");
        assert_eq!(go(&r, wrong.clone()).unwrap_err(), Refusal::Issuer);
        wrong["iss"] = json!(["https://issuer"]);
        assert_eq!(go(&r, wrong.clone()).unwrap_err(), Refusal::Issuer);
        wrong.as_object_mut().unwrap().remove("iss");
        assert_eq!(go(&r, wrong).unwrap_err(), Refusal::Issuer);
        // Subject.
        let bound = Role {
            bound_subject: "y".into(),
            ..role()
        };
        assert_eq!(go(&bound, with(json!({ "aud": "vault" }))).unwrap_err(), Refusal::Subject);
    }

    #[test]
    fn bound_claims_user_claim_and_mappings() {
        let mut r = role();
        r.bound_claims.insert("repository".into(), Expected::One("org/app".into()));
        r.bound_claims.insert(
            "/kubernetes.io/namespace".into(),
            Expected::Any(vec!["ci".into(), "prod".into()]),
        );
        r.bound_claims.insert("groups".into(), Expected::One("admins".into()));
        r.claim_mappings.insert("repository".into(), "repo".into());
        r.claim_mappings.insert("/kubernetes.io/namespace".into(), "namespace".into());
        r.claim_mappings.insert("run_number".into(), "run".into());
        r.claim_mappings.insert("absent".into(), "nothing".into());
        let good = json!({
            "aud": "vault", "sub": "me", "repository": "org/app", "run_number": 42,
            "kubernetes.io": { "namespace": "prod" }, "groups": ["devs", "admins"],
        });
        let got = check(&r, &[], &claims(good.clone()), NOW).unwrap();
        assert_eq!(got.user, "me");
        assert_eq!(got.metadata["repo"], "org/app");
        assert_eq!(got.metadata["namespace"], "prod");
        assert_eq!(got.metadata["run"], "42");
        assert!(!got.metadata.contains_key("nothing"));
        for (claim, value) in [
            ("repository", json!("org/other")),
            ("repository", json!(["org/other"])),
            ("groups", json!(["devs"])),
            ("groups", json!({ "admins": true })),
        ] {
            let mut c = good.clone();
            c[claim] = value;
            assert!(matches!(
                check(&r, &[], &claims(c), NOW),
                Err(Refusal::BoundClaim(_))
            ));
        }
        // Arrays of strings do match element-wise (groups above); a
        // missing bound claim is refused.
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("kubernetes.io");
        assert!(matches!(check(&r, &[], &claims(c), NOW), Err(Refusal::BoundClaim(_))));
        // Glob.
        r.bound_claims_type = ClaimsType::Glob;
        r.bound_claims.insert("repository".into(), Expected::One("org/*".into()));
        let mut c = good.clone();
        c["repository"] = json!("org/other");
        assert!(check(&r, &[], &claims(c), NOW).is_ok());
        // A mapped claim that is not text refuses the login.
        let mut c = good.clone();
        c["run_number"] = json!({ "n": 1 });
        assert_eq!(
            check(&r, &[], &claims(c), NOW).unwrap_err(),
            Refusal::ClaimMapping("run_number".into())
        );
        // The user claim must be text.
        for sub in [json!(""), json!(["me"]), json!({ "me": 1 }), json!(true)] {
            let mut c = good.clone();
            c["sub"] = sub;
            assert_eq!(check(&r, &[], &claims(c), NOW).unwrap_err(), Refusal::UserClaim);
        }
    }

    /// A glob matcher written the slow, obvious way, to check the fast one.
    fn glob_reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| glob_reference(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && glob_reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_obvious_matcher(p in "[ab*]{0,8}", t in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(glob(&p, &t), glob_reference(&pc, &tc));
        }

        #[test]
        fn a_glob_without_stars_is_equality(p in "\\PC{0,20}", t in "\\PC{0,20}") {
            let p = p.replace('*', "");
            prop_assert_eq!(glob(&p, &t), p == t);
        }

        #[test]
        fn any_claims_are_checked_without_a_panic(
            aud in prop_oneof![
                Just(json!(null)), Just(json!("vault")), Just(json!(["vault", 1])),
                Just(json!([[["vault"]]])), Just(json!({})), any::<i64>().prop_map(|n| json!(n)),
            ],
            exp in prop_oneof![any::<i64>().prop_map(|n| json!(n)), any::<f64>().prop_map(|f| json!(f)), Just(json!("1"))],
            sub in "\\PC{0,10}",
            depth in 0usize..40,
        ) {
            let mut nested = json!("x");
            for _ in 0..depth {
                nested = json!({ "n": [nested] });
            }
            let mut r = role();
            r.bound_claims.insert("/deep/n/0/n".into(), Expected::One("*".into()));
            r.bound_claims_type = ClaimsType::Glob;
            r.claim_mappings.insert("/deep/n/0".into(), "d".into());
            let c = json!({ "aud": aud, "exp": exp, "sub": sub, "deep": nested });
            let Value::Object(c) = c else { unreachable!() };
            let _ = check(&r, &["i"], &c, NOW);
        }
    }
}
