//! Password policies: Vault's documented examples, hostile text, the
//! generator's uniformity and its guarantee, and the store.

use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// A fixed, seeded sequence (xorshift64*): generation that a test can
/// repeat exactly.
struct Seeded(u64);

impl Entropy for Seeded {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), PasswordPolicyError> {
        for b in buf {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
        Ok(())
    }
}

fn seeded(seed: u64) -> Draws<Seeded> {
    // xorshift's state must not be zero.
    Draws::new(Seeded(seed | 1))
}

fn parsed(text: &str) -> PasswordPolicy {
    match PasswordPolicy::parse(text) {
        Ok(policy) => policy,
        Err(e) => panic!("refused: {e}\n{text}"),
    }
}

fn refused(text: &str) -> String {
    match PasswordPolicy::parse(text) {
        Ok(p) => panic!("accepted: {p:?}\n{text}"),
        Err(e) => e.to_string(),
    }
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";

/// Vault's documented example: one of each class, symbols from `!@#$%^&*`.
const VAULT_EXAMPLE: &str = r#"
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 1
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 1
}
"#;

#[test]
fn the_default_is_24_letters_and_digits_with_each_class() {
    let default = PasswordPolicy::default();
    assert_eq!(default, parsed(DEFAULT_POLICY));
    assert_eq!(default.length(), 24);
    assert_eq!(default.alphabet(), format!("{DIGITS}{UPPER}{LOWER}"));
    for _ in 0..100 {
        let p = default.generate();
        assert!(default.is_satisfied_by(&p), "{}", p.as_str());
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        for class in [LOWER, UPPER, DIGITS] {
            assert!(p.chars().any(|c| class.contains(c)), "{}", p.as_str());
        }
    }
}

#[test]
fn vaults_documented_policies_parse_and_generate() {
    let policy = parsed(VAULT_EXAMPLE);
    assert_eq!(policy.length(), 20);
    assert_eq!(policy.alphabet().len(), 26 + 26 + 10 + 8);
    let p = policy.generate();
    assert!(policy.is_satisfied_by(&p));
    assert!(p.chars().any(|c| "!@#$%^&*".contains(c)));

    // min-chars defaults to 0: the charset only adds characters.
    let policy = parsed(
        r#"
        length = 8
        rule "charset" {
          charset = "abcde"
        }
        rule "charset" {
          charset = "01234"
          min-chars = 1
        }
        "#,
    );
    assert_eq!(policy.alphabet(), "01234abcde");
    assert!(policy.is_satisfied_by("04031243"));
    assert!(!policy.is_satisfied_by("abcdeabc"), "no digit");
    assert!(!policy.is_satisfied_by("0403124"), "too short");
    assert!(!policy.is_satisfied_by("0403124z"), "outside the alphabet");
    assert!(!policy.is_satisfied_by("04031945"), "9 is in no charset");
}

#[test]
fn overlapping_and_repeated_characters_count_once() {
    let policy = parsed(
        r#"
        length = 6
        rule "charset" {
          charset = "aabbccdde"
          min-chars = 1
        }
        rule "charset" {
          charset = "cdefg"
          min-chars = 1
        }
        "#,
    );
    assert_eq!(policy.alphabet(), "abcdefg");
    // One character may satisfy both rules, as in Vault.
    assert!(policy.is_satisfied_by("cccccc"));
    assert!(!policy.is_satisfied_by("aaaaaa"));
}

#[test]
fn hcl_and_json_read_the_same() {
    let hcl = parsed(VAULT_EXAMPLE);
    let rules = r#"
        {"charset": {"charset": "abcdefghijklmnopqrstuvwxyz", "min-chars": 1}},
        {"charset": {"charset": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "min-chars": 1}},
        {"charset": [{"charset": "0123456789", "min-chars": 1},
                     {"charset": "!@#$%^&*", "min-chars": 1}]}"#;
    let json = parsed(&format!(r#"{{"length": 20, "rule": [{rules}]}}"#));
    assert_eq!(hcl, json);
    let single = parsed(r#"{"length": 5, "rule": {"charset": {"charset": "xyz"}}}"#);
    assert_eq!(single.alphabet(), "xyz");
}

#[test]
fn hostile_policies_get_clear_errors() {
    let rule = "rule \"charset\" {\n  charset = \"abc\"\n}\n";
    let cases: Vec<(String, &str)> = vec![
        (rule.into(), "length is required"),
        (format!("length = 3\n{rule}"), "length must be a whole number from 4 to 100"),
        (format!("length = 101\n{rule}"), "from 4 to 100"),
        (format!("length = 99999999999999999999999999\n{rule}"), "from 4 to 100"),
        (format!("length = 18446744073709551615\n{rule}"), "from 4 to 100"),
        (format!("length = -20\n{rule}"), "from 4 to 100"),
        (format!("length = 20.5\n{rule}"), "whole number"),
        (format!("length = \"20\"\n{rule}"), "not a string"),
        (format!("length = [20]\n{rule}"), "not a list"),
        (format!("length = 10 + 10\n{rule}"), "not an expression"),
        ("length = 20\n".into(), "at least one rule \"charset\" is required"),
        ("length = 20\nrule \"charset\" {\n  charset = \"\"\n}\n".into(), "charset is empty"),
        ("length = 20\nrule \"charset\" {\n  min-chars = 1\n}\n".into(), "charset is required"),
        ("length = 20\nrule \"charset\" {\n  charset = \"abcé\"\n}\n".into(), "not ASCII"),
        ("length = 20\nrule \"charset\" {\n  charset = \"日本\"\n}\n".into(), "not ASCII"),
        ("length = 20\nrule \"charset\" {\n  charset = \"ab c\"\n}\n".into(), "a space"),
        ("length = 20\nrule \"charset\" {\n  charset = \"ab\\tc\"\n}\n".into(), "control character (U+0009)"),
        ("length = 20\nrule \"charset\" {\n  charset = \"a\\u0000\"\n}\n".into(), "control character (U+0000)"),
        ("length = 20\nrule \"charset\" {\n  charset = \"a${b}\"\n}\n".into(), "$${"),
        ("length = 20\nrule \"charset\" {\n  charset = 7\n}\n".into(), "charset must be a string, not a number"),
        ("length = 20\nrule \"charset\" {\n  charset = [\"a\"]\n}\n".into(), "not a list"),
        ("length = 20\nrule \"regex\" {\n  pattern = \".*\"\n}\n".into(), "unknown rule type \"regex\""),
        ("length = 20\nrule {\n  charset = \"abc\"\n}\n".into(), "a rule takes one label"),
        ("length = 20\nrule \"charset\" \"x\" {\n  charset = \"abc\"\n}\n".into(), "a rule takes one label"),
        ("length = 20\nrules \"charset\" {\n  charset = \"abc\"\n}\n".into(), "unknown block \"rules\""),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  max-chars = 3\n}\n".into(), "unknown key \"max-chars\""),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  inner {\n  }\n}\n".into(), "unknown block \"inner\""),
        (format!("length = 20\nwidth = 3\n{rule}"), "unknown key \"width\""),
        (format!("length = 20\nlength = 30\n{rule}"), "redefined attribute"),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  charset = \"def\"\n}\n".into(), "redefined attribute"),
        ("length = 20\nrule \"charset\" { charset = \"abc\" min-chars = 1 }\n".into(), "on its own line"),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = -1\n}\n".into(), "min-chars must be a whole number from 0 to 100"),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 1000000000000\n}\n".into(), "min-chars must be a whole number from 0 to 100"),
        ("length = 20\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = \"2\"\n}\n".into(), "not a string"),
        (
            "length = 4\nrule \"charset\" {\n  charset = \"abc\"\n  min-chars = 3\n}\nrule \"charset\" {\n  charset = \"123\"\n  min-chars = 2\n}\n".into(),
            "the rules require at least 5 characters (their min-chars together) but length is 4",
        ),
        (
            format!("length = 20\n{rule}rule \"charset\" {{\n  charset = \"cbaa\"\n  min-chars = 2\n}}\n"),
            "rules 1 and 2 have the same characters",
        ),
        ("length = 20\nrule \"charset\" {\n".into(), "failed to parse password policy: line"),
        ("".into(), "length is required"),
        ("{".into(), "failed to parse"),
        ("[1, 2]".into(), "failed to parse"),
        (r#"{"length": 20, "length": 21, "rule": {"charset": {"charset": "a"}}}"#.into(), "key \"length\" is given twice"),
        (r#"{"length": 20, "rule": {"charset": {"charset": "a", "charset": "b"}}}"#.into(), "given twice"),
        (r#"{"length": 20, "rule": "charset"}"#.into(), "\"rule\" must be an object or a list of objects"),
        (r#"{"length": 20, "rule": {"charset": "abc"}}"#.into(), "a rule must be an object"),
        (r#"{"length": 20, "rule": {"other": {"charset": "a"}}}"#.into(), "unknown rule type \"other\""),
        (r#"{"length": 20.0, "rule": {"charset": {"charset": "a"}}}"#.into(), "whole number"),
        (r#"{"length": -5, "rule": {"charset": {"charset": "a"}}}"#.into(), "from 4 to 100"),
        (r#"{"length": 20, "rules": []}"#.into(), "unknown key \"rules\""),
    ];
    for (text, expected) in cases {
        let e = refused(&text);
        assert!(e.contains(expected), "{text:?}: {e:?} lacks {expected:?}");
    }
}

#[test]
fn too_many_rules_and_long_names_are_refused_briefly() {
    // 101 distinct charsets: pairs of distinct characters.
    let chars: Vec<char> = ('!'..='~').collect();
    let mut text = String::from("length = 100\n");
    let mut n = 0;
    'outer: for a in &chars {
        for b in &chars {
            if a < b && *a != '"' && *b != '"' && *a != '\\' && *b != '\\' {
                text.push_str(&format!(
                    "rule \"charset\" {{\n  charset = \"{a}{b}\"\n}}\n"
                ));
                n += 1;
                if n == 101 {
                    break 'outer;
                }
            }
        }
    }
    assert!(refused(&text).contains("at most 100"));

    // A 100 KB key is named, but not quoted whole.
    let long = "k".repeat(100_000);
    let e = refused(&format!("length = 20\n{long} = 1\n"));
    assert!(e.len() < 200, "{}", e.len());
    let e = refused(&format!(r#"{{"{long}": 1}}"#));
    assert!(e.len() < 200, "{}", e.len());
}

#[test]
fn every_byte_maps_to_an_index_equally_often() {
    // For every set size a draw can have, each index is reached by exactly
    // as many byte values as any other (no modulo bias), and fewer than
    // half of the byte values are rejected.
    for n in 1..=256usize {
        let mut hits = vec![0usize; n];
        let mut rejected = 0;
        for b in 0..=255u8 {
            match reduce(b, n) {
                Some(i) => hits[i] += 1,
                None => rejected += 1,
            }
        }
        assert!(hits.iter().all(|&h| h == hits[0]), "n = {n}: {hits:?}");
        assert_eq!(hits[0] * n + rejected, 256);
        assert!(rejected < 128, "n = {n}: {rejected} rejected");
    }
}

#[test]
fn a_draw_from_an_impossible_set_is_an_error_not_a_panic() {
    let mut draws = seeded(1);
    assert!(draws.below(0).is_err());
    assert!(draws.below(257).is_err());
    assert!(draws.pick(&Charset(Vec::new())).is_err());
}

#[test]
fn ten_thousand_passwords_satisfy_their_rules() {
    // The most demanding shapes: every character spoken for by a minimum;
    // a tiny charset with a large minimum; the longest password; Vault's
    // example. Drawn from the operating system's generator, as served.
    let tight = parsed(
        r#"
        length = 4
        rule "charset" {
          charset = "abcdefghijklmnopqrstuvwxyz"
          min-chars = 1
        }
        rule "charset" {
          charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
          min-chars = 1
        }
        rule "charset" {
          charset = "0123456789"
          min-chars = 1
        }
        rule "charset" {
          charset = "-"
          min-chars = 1
        }
        "#,
    );
    let skewed = parsed(
        r##"
        length = 100
        rule "charset" {
          charset = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
          min-chars = 90
        }
        rule "charset" {
          charset = "z"
          min-chars = 10
        }
        rule "charset" {
          charset = "abcdefghijklmnopqrstuvwxyz"
        }
        "##,
    );
    let vault = parsed(VAULT_EXAMPLE);
    let default = PasswordPolicy::default();
    for policy in [&tight, &skewed, &vault, &default] {
        for _ in 0..10_000 {
            let p = policy.try_generate().unwrap();
            assert!(policy.is_satisfied_by(&p), "{policy:?}: {}", p.as_str());
        }
    }
}

#[test]
fn required_characters_land_anywhere() {
    // One digit among three letters: after the shuffle, the digit is
    // found in every position, and every digit is used.
    let policy = parsed(
        r#"
        length = 4
        rule "charset" {
          charset = "0123456789"
          min-chars = 1
        }
        rule "charset" {
          charset = "ab"
        }
        "#,
    );
    let mut draws = seeded(7);
    let mut positions = [0usize; 4];
    let mut digits = BTreeSet::new();
    for _ in 0..2000 {
        let p = policy.generate_with(&mut draws).unwrap();
        assert!(policy.is_satisfied_by(&p));
        for (i, c) in p.chars().enumerate() {
            if c.is_ascii_digit() {
                positions[i] += 1;
                digits.insert(c);
            }
        }
    }
    assert!(positions.iter().all(|&n| n > 300), "{positions:?}");
    assert_eq!(digits.len(), 10);
}

/// HCL text for `s` as a quoted string: escapes, and literal `${`/`%{`.
fn hcl_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "$${")
        .replace("%{", "%%{");
    format!("\"{escaped}\"")
}

/// A valid policy's parts: a length and rules whose minimums fit in it.
fn valid_policy() -> impl Strategy<Value = (usize, Vec<(String, usize)>)> {
    let charset = proptest::collection::vec(proptest::char::range('!', '~'), 1..40)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    (
        MIN_LENGTH..=MAX_LENGTH,
        proptest::collection::vec((charset, 0..30usize), 1..8),
    )
        .prop_map(|(length, mut rules)| {
            // Squeeze the minimums to fit, and drop rules whose characters
            // repeat an earlier rule's.
            let mut seen = BTreeSet::new();
            rules.retain(|(chars, _)| seen.insert(chars.bytes().collect::<BTreeSet<u8>>()));
            let mut left = length;
            for (_, min) in &mut rules {
                *min = (*min).min(left);
                left -= *min;
            }
            (length, rules)
        })
}

fn as_hcl(length: usize, rules: &[(String, usize)]) -> String {
    let mut text = format!("length = {length}\n");
    for (chars, min) in rules {
        text.push_str(&format!(
            "rule \"charset\" {{\n  charset = {}\n  min-chars = {min}\n}}\n",
            hcl_string(chars)
        ));
    }
    text
}

fn as_json(length: usize, rules: &[(String, usize)]) -> String {
    let rules: Vec<_> = rules
        .iter()
        .map(|(chars, min)| serde_json::json!({"charset": {"charset": chars, "min-chars": min}}))
        .collect();
    serde_json::json!({ "length": length, "rule": rules }).to_string()
}

/// Pieces hostile HCL is made of.
fn hcl_token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "length",
        "=",
        "4",
        "100",
        "101",
        "-1",
        "1e400",
        "rule",
        "\"charset\"",
        "\"regex\"",
        "{",
        "}",
        "\n",
        "charset",
        "min-chars",
        "\"abc\"",
        "\"\"",
        "\"é\"",
        "\"${x}\"",
        "\"$${\"",
        "[",
        "]",
        ",",
        " ",
        "#",
        "//",
        "/*",
        "*/",
        "<<EOT\n",
        "EOT\n",
        "\"\\u0000\"",
        "null",
        "true",
        "99999999999999999999",
        "0",
        "3",
    ])
}

proptest! {
    #[test]
    fn every_policy_that_parses_makes_passwords_that_satisfy_it(
        (length, rules) in valid_policy(),
        seed in any::<u64>(),
    ) {
        let policy = PasswordPolicy::parse(&as_hcl(length, &rules))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&policy, &parsed(&as_json(length, &rules)));
        prop_assert_eq!(policy.length(), length);
        let mut draws = seeded(seed);
        for _ in 0..20 {
            let p = policy.generate_with(&mut draws).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(policy.is_satisfied_by(&p), "{:?}: {}", policy, p.as_str());
            for (chars, min) in &rules {
                prop_assert!(p.chars().filter(|c| chars.contains(*c)).count() >= *min);
            }
        }
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_a_panic(text in "\\PC{0,400}", seed in any::<u64>()) {
        if let Ok(policy) = PasswordPolicy::parse(&text) {
            let p = policy.generate_with(&mut seeded(seed)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(policy.is_satisfied_by(&p));
        }
    }

    #[test]
    fn hostile_hcl_is_parsed_or_refused_without_a_panic(
        tokens in proptest::collection::vec(hcl_token(), 0..60),
        seed in any::<u64>(),
    ) {
        let text = tokens.join(" ");
        match PasswordPolicy::parse(&text) {
            Ok(policy) => {
                let p = policy.generate_with(&mut seeded(seed)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(policy.is_satisfied_by(&p));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn hostile_json_is_parsed_or_refused_without_a_panic(
        length in any::<i64>(),
        chars in "\\PC{0,20}",
        min in any::<i64>(),
        kind in "[a-z]{1,8}",
    ) {
        for text in [
            serde_json::json!({"length": length, "rule": {kind.clone(): {"charset": chars, "min-chars": min}}}),
            serde_json::json!({"length": length, "rule": [{"charset": [{"charset": chars, "min-chars": min}]}]}),
            serde_json::json!({"length": chars, "rule": [[{"charset": length}]]}),
        ] {
            let _ = PasswordPolicy::parse(&text.to_string());
        }
    }
}

async fn store() -> (tempfile::TempDir, PasswordPolicies) {
    let dir = tempfile::tempdir().unwrap();
    let storage: crate::storage::Storage = Arc::new(
        crate::storage::SqliteBackend::open(&dir.path().join("db"))
            .await
            .unwrap(),
    );
    let barrier = crate::barrier::Barrier::new(crate::barrier::Keyring::generate().unwrap());
    (
        dir,
        PasswordPolicies::new(SealedStorage::new(storage, Arc::new(barrier))),
    )
}

#[tokio::test]
async fn the_store_keeps_text_and_resolves_names() {
    let (_dir, store) = store().await;
    assert!(store.list().await.unwrap().is_empty());
    store.put("Symbols.v1", VAULT_EXAMPLE).await.unwrap();
    assert_eq!(
        store.text("Symbols.v1").await.unwrap().as_deref(),
        Some(VAULT_EXAMPLE)
    );
    assert_eq!(store.list().await.unwrap(), ["Symbols.v1"]);
    // Names keep their case, as Vault's do.
    assert!(store.get("symbols.v1").await.unwrap().is_none());

    let resolved = store.resolve(Some("Symbols.v1")).await.unwrap();
    assert_eq!(resolved, parsed(VAULT_EXAMPLE));
    assert_eq!(
        store.resolve(None).await.unwrap(),
        PasswordPolicy::default()
    );
    assert_eq!(
        store.resolve(Some("")).await.unwrap(),
        PasswordPolicy::default()
    );
    let e = store.resolve(Some("gone")).await.unwrap_err();
    assert!(matches!(e, PasswordPolicyError::NotFound(_)));
    assert_eq!(e.to_string(), "password policy \"gone\" does not exist");

    // A policy that does not parse is not stored; the old one stays.
    let e = store.put("Symbols.v1", "length = 2").await.unwrap_err();
    assert!(matches!(e, PasswordPolicyError::Invalid(_)), "{e}");
    assert_eq!(store.resolve(Some("Symbols.v1")).await.unwrap(), resolved);

    for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129)] {
        assert!(
            matches!(
                store.put(bad, VAULT_EXAMPLE).await,
                Err(PasswordPolicyError::Name(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            store.resolve(Some(bad)).await,
            Err(PasswordPolicyError::Name(_)) | Ok(_)
        ));
    }

    store.delete("Symbols.v1").await.unwrap();
    store.delete("Symbols.v1").await.unwrap();
    assert!(store.list().await.unwrap().is_empty());
    assert!(matches!(
        store.resolve(Some("Symbols.v1")).await,
        Err(PasswordPolicyError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_stored_policy_that_no_longer_parses_fails_clearly() {
    let (_dir, store) = store().await;
    // As an older, laxer broker might have stored it.
    store
        .store
        .put(&key("old"), &"length = 1000".to_owned())
        .await
        .unwrap();
    assert!(store.text("old").await.unwrap().is_some());
    let e = store.resolve(Some("old")).await.unwrap_err().to_string();
    assert!(
        e.contains("stored password policy \"old\" is no longer valid"),
        "{e}"
    );
    assert!(e.contains("write it again"), "{e}");
}
