//! A JWT in compact serialization, split and decoded strictly before any
//! key is consulted: the length is capped, the parts are canonical
//! base64url, the header and the claims are JSON objects, and the header's
//! algorithm is one the mount accepts.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::Refusal;
use super::keys::Alg;

/// The longest JWT a login takes (bytes). Platform tokens are a few KiB.
pub const MAX_LEN: usize = 16 * 1024;

/// A JWT, decoded but not yet verified.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The header's algorithm.
    pub alg: Alg,
    /// The header's key id.
    pub kid: Option<String>,
    /// The claims, unverified until [`Jws::signing_input`] is checked.
    pub claims: Map<String, Value>,
    /// `header.payload`, as signed.
    pub signing_input: &'a str,
    /// The signature part (base64url).
    pub signature: &'a str,
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::Malformed(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::Malformed(what)),
    }
}

/// Splits `token` into its three parts, without decoding them.
fn split(token: &str) -> Result<(&str, &str, &str), Refusal> {
    if token.len() > MAX_LEN {
        return Err(Refusal::TooLong);
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Ok((h, p, s))
        }
        _ => Err(Refusal::Malformed("not three parts")),
    }
}

/// Decodes `token`, accepting only an algorithm of `accepted`.
pub fn parse<'a>(token: &'a str, accepted: &[Alg]) -> Result<Jws<'a>, Refusal> {
    let (header, payload, signature) = split(token)?;
    let head = object(&decode_part(header, "header")?, "header")?;
    let alg = match head.get("alg") {
        Some(Value::String(a)) => a.as_str(),
        _ => return Err(Refusal::Malformed("no alg")),
    };
    let alg = Alg::parse(alg)
        .filter(|a| accepted.contains(a))
        .ok_or_else(|| Refusal::Algorithm(alg.chars().take(16).collect()))?;
    // An extension this broker would have to understand (RFC 7515 4.1.11).
    if head.contains_key("crit") {
        return Err(Refusal::Malformed("crit"));
    }
    let kid = match head.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Refusal::Malformed("kid")),
    };
    decode_part(signature, "signature")?;
    let claims = object(&decode_part(payload, "claims")?, "claims")?;
    Ok(Jws {
        alg,
        kid,
        claims,
        signing_input: &token[..header.len() + 1 + payload.len()],
        signature,
    })
}

/// The claims of `token` without any check of its signature: only to name
/// the identity a failed login counts against. Never trusted.
pub fn peek_claims(token: &str) -> Option<Map<String, Value>> {
    let (_, payload, _) = split(token).ok()?;
    object(&decode_part(payload, "claims").ok()?, "claims").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: &Value, claims: &Value) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    const ALL: &[Alg] = &Alg::ALL;

    #[test]
    fn a_well_formed_token_decodes() {
        let t = token(
            &json!({ "alg": "RS256", "kid": "k1", "typ": "JWT" }),
            &json!({ "sub": "me" }),
        );
        let j = parse(&t, ALL).unwrap();
        assert_eq!(j.alg, Alg::Rs256);
        assert_eq!(j.kid.as_deref(), Some("k1"));
        assert_eq!(j.claims["sub"], json!("me"));
        assert_eq!(j.signature, "c2ln");
        assert_eq!(format!("{}.c2ln", j.signing_input), t);
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let claims = json!({ "sub": "me" });
        for alg in ["none", "None", "HS256", "HS384", "HS512", "RS1", "", "rs256"] {
            let t = token(&json!({ "alg": alg }), &claims);
            assert!(
                matches!(parse(&t, ALL), Err(Refusal::Algorithm(_))),
                "{alg}"
            );
        }
        // An algorithm the mount does not list.
        let t = token(&json!({ "alg": "ES256" }), &claims);
        assert!(matches!(
            parse(&t, &[Alg::Rs256]),
            Err(Refusal::Algorithm(_))
        ));
        let bad = [
            String::new(),
            "a".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            "..".into(),
            format!("{}..c2ln", b64(&json!({ "alg": "RS256" }))),
            // `alg: none` tokens often end with an empty signature.
            format!("{}.{}.", b64(&json!({ "alg": "RS256" })), b64(&claims)),
            // Not JSON, not an object, no alg, alg not a string.
            format!("bm90IGpzb24.{}.c2ln", b64(&claims)),
            token(&json!(["RS256"]), &claims),
            token(&json!({ "typ": "JWT" }), &claims),
            token(&json!({ "alg": 256 }), &claims),
            token(&json!({ "alg": "RS256", "kid": 7 }), &claims),
            token(&json!({ "alg": "RS256", "crit": ["exp"] }), &claims),
            token(&json!({ "alg": "RS256" }), &json!("claims")),
            token(&json!({ "alg": "RS256" }), &json!([1, 2])),
            // Padding and non-base64url characters.
            format!("{}=.{}.c2ln", b64(&json!({ "alg": "RS256" })), b64(&claims)),
            format!("{}.{}+/.c2ln", b64(&json!({ "alg": "RS256" })), b64(&claims)),
            format!("{}.{}.c2ln=", b64(&json!({ "alg": "RS256" })), b64(&claims)),
        ];
        for t in &bad {
            assert!(parse(t, ALL).is_err(), "{t}");
        }
        // Huge: refused before any decoding.
        let huge = token(
            &json!({ "alg": "RS256" }),
            &json!({ "pad": "x".repeat(MAX_LEN) }),
        );
        assert_eq!(parse(&huge, ALL).unwrap_err(), Refusal::TooLong);
        assert!(peek_claims(&huge).is_none());
        // Deeply nested claims: refused, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let t = format!(
            "{}.{}.c2ln",
            b64(&json!({ "alg": "RS256" })),
            URL_SAFE_NO_PAD.encode(format!("{{\"a\":{deep}}}"))
        );
        assert!(t.len() <= MAX_LEN);
        assert!(matches!(parse(&t, ALL), Err(Refusal::Malformed(_))));
    }

    proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_a_panic(s in "\\PC{0,400}") {
            let _ = parse(&s, ALL);
            let _ = peek_claims(&s);
        }

        #[test]
        fn any_three_base64_parts_are_parsed_or_refused(
            h in proptest::collection::vec(any::<u8>(), 0..200),
            p in proptest::collection::vec(any::<u8>(), 0..200),
            s in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let t = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(&h),
                URL_SAFE_NO_PAD.encode(&p),
                URL_SAFE_NO_PAD.encode(&s),
            );
            if let Ok(j) = parse(&t, ALL) {
                // Only an accepted algorithm gets through.
                prop_assert!(ALL.contains(&j.alg));
            }
        }

        #[test]
        fn claims_round_trip(sub in "\\PC{0,64}", kid in "[a-zA-Z0-9_-]{1,32}", n in any::<i64>()) {
            let t = token(&json!({ "alg": "ES256", "kid": kid }), &json!({ "sub": sub, "n": n }));
            let j = parse(&t, ALL).unwrap();
            prop_assert_eq!(j.alg, Alg::Es256);
            prop_assert_eq!(j.kid, Some(kid));
            prop_assert_eq!(&j.claims["sub"], &json!(sub));
            prop_assert_eq!(&j.claims["n"], &json!(n));
        }
    }
}
