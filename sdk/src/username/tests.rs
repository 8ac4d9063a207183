//! Username templates: Vault's functions and forms, the limits, and
//! hostile templates.

use proptest::prelude::*;

use super::*;

fn counter() -> impl FnMut(&mut [u8]) {
    let mut next = 0u8;
    move |buf: &mut [u8]| {
        for b in buf {
            *b = next;
            next = next.wrapping_add(1);
        }
    }
}

const PG: Limit = Limit {
    max_chars: 63,
    max_bytes: 63,
};
const MYSQL: Limit = Limit {
    max_chars: 32,
    max_bytes: 128,
};
const WIDE: Limit = Limit {
    max_chars: 10_000,
    max_bytes: 10_000,
};

/// 2023-11-14 22:13:20 UTC, a Tuesday, the 318th day of the year.
const T: u64 = 1_700_000_000;

fn inputs<'a>(display_name: &'a str, role_name: &'a str) -> Inputs<'a> {
    Inputs {
        display_name,
        role_name,
        unix_time: T,
    }
}

fn render(template: &str, display_name: &str, role_name: &str) -> String {
    match UsernameTemplate::parse(template) {
        Ok(t) => t.render_with(&inputs(display_name, role_name), WIDE, counter()),
        Err(e) => panic!("{template}: {e}"),
    }
}

fn refused(template: &str) -> String {
    match UsernameTemplate::parse(template) {
        Ok(t) => panic!("{template} accepted: {t:?}"),
        Err(e) => e.to_string(),
    }
}

fn sha256_of(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn renders_the_plugins_default_shape() {
    let name = UsernameTemplate::parse(
        "v-{{display_name | truncate 8}}-{{role_name | truncate 8}}-{{random 20}}-{{unix_time}}",
    )
    .unwrap()
    .render_with(&inputs("token-ci-pipeline", "readonly-role"), PG, counter());
    assert_eq!(name, "v-token-ci-readonly-abcdefghijklmnopqrst-1700000000");
}

#[test]
fn vaults_own_default_templates_render_as_vault_writes_them() {
    // Vault's PostgreSQL default: printf with sub-pipelines, then cut.
    let vault_pg = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#;
    assert_eq!(
        render(vault_pg, "token-ci-pipeline", "readonly-role"),
        "v-token-ci-readonly-abcdefghijklmnopqrst-1700000000"
    );
    // Vault's MySQL default.
    let vault_mysql = r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) (.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}"#;
    let name = render(vault_mysql, "token-ci-pipeline", "readonly-role");
    assert_eq!(name, "v-token-ci-p-readonly-r-abcdefgh");
    assert_eq!(name.len(), 32);
}

#[test]
fn fields_take_vaults_names_and_the_older_ones() {
    assert_eq!(render("{{.DisplayName}}_{{.RoleName}}", "d", "r"), "d_r");
    assert_eq!(render("{{display_name}}_{{role_name}}", "d", "r"), "d_r");
    assert_eq!(render("{{ .DisplayName }}", "d", "r"), "d");
}

#[test]
fn each_of_vaults_functions() {
    let cases = [
        ("{{.RoleName | truncate 4}}", "read"),
        ("{{truncate 4 .RoleName}}", "read"),
        ("{{.RoleName | truncate 400}}", "readonly-role"),
        ("{{.RoleName | uppercase}}", "READONLY-ROLE"),
        ("{{.DisplayName | lowercase}}", "token-ci"),
        ("{{.RoleName | replace \"-\" \"_\"}}", "readonly_role"),
        ("{{replace \"o\" \"0\" .RoleName}}", "read0nly-r0le"),
        (
            "{{.RoleName | replace \"\" \".\"}}",
            ".r.e.a.d.o.n.l.y.-.r.o.l.e.",
        ),
        ("{{.RoleName | base64}}", "cmVhZG9ubHktcm9sZQ=="),
        ("{{unix_time}}", "1700000000"),
        ("{{unix_time_millis}}", "1700000000000"),
        ("{{random 5}}", "abcde"),
        (
            "{{printf \"v-%s_%d-%v%%\" .RoleName 42 unix_time}}",
            "v-readonly-role_42-1700000000%",
        ),
        (
            "{{printf \"%s\" (.RoleName | truncate 4 | uppercase)}}",
            "READ",
        ),
        ("{{ 42 }}", "42"),
        ("{{ \"a}}b\" }}", "a}}b"),
        ("{{ `raw \\n` }}", "raw \\n"),
        ("a {{- \" b \" -}} c", "a b c"),
        ("a {{- /* gone */ -}} c", "ac"),
        ("a{{/* a comment with \" and }} in it */}}c", "ac"),
        (
            "{{.RoleName | truncate 8 | replace \"-\" \"\" | uppercase}}",
            "READONLY",
        ),
    ];
    for (template, expected) in cases {
        assert_eq!(
            render(template, "Token-CI", "readonly-role"),
            expected,
            "{template}"
        );
    }
    assert_eq!(
        render("{{.RoleName | sha256}}", "", "readonly-role"),
        sha256_of("readonly-role")
    );
}

#[test]
fn truncate_sha256_keeps_short_values_and_hashes_the_rest() {
    assert_eq!(
        render("{{.DisplayName | truncate_sha256 20}}", "token-ci", ""),
        "token-ci"
    );
    let long = "token-ci-pipeline-for-the-billing-service";
    let name = render("{{.DisplayName | truncate_sha256 20}}", long, "");
    assert_eq!(name.len(), 20);
    assert_eq!(
        name,
        format!("{}{}", &long[..12], &sha256_of(&long[12..])[..8])
    );
    // The module docs' example.
    let name = render(
        r#"v-{{.RoleName | lowercase | replace "_" "-"}}-{{.DisplayName | truncate_sha256 12}}"#,
        "token-ci-pipeline",
        "Read_Only",
    );
    assert_eq!(
        name,
        format!("v-read-only-toke{}", &sha256_of("n-ci-pipeline")[..8])
    );
}

#[test]
fn timestamps_take_gos_layout_tokens() {
    let cases = [
        ("2006-01-02T15:04:05Z07:00", "2023-11-14T22:13:20Z"),
        ("20060102150405", "20231114221320"),
        (
            "Mon Jan _2 15:04:05 MST 2006",
            "Tue Nov 14 22:13:20 UTC 2023",
        ),
        (
            "Monday, January 2, 06 3:4:5 PM pm",
            "Tuesday, November 14, 23 10:13:20 PM pm",
        ),
        (
            "03 002 -0700 -07:00 -07 Z0700 Z07",
            "10 318 +0000 +00:00 +00 Z Z",
        ),
        ("05.000 05,000000 05.999", "20.000 20,000000 20"),
        ("_2006", "_2023"),
        ("v-2006.0102", "v-2023.1114"),
    ];
    for (layout, expected) in cases {
        let template = format!("{{{{timestamp \"{layout}\"}}}}");
        assert_eq!(render(&template, "", ""), expected, "{layout}");
    }
    // Milliseconds, where the clock gives them.
    let t = UsernameTemplate::parse(r#"{{timestamp "05.000"}}-{{unix_time_millis}}"#).unwrap();
    let name = t.render_at(
        &inputs("", ""),
        WIDE,
        Now {
            secs: T,
            millis: T * 1000 + 42,
        },
        counter(),
    );
    assert_eq!(name, "20.042-1700000000042");
}

#[test]
fn uuids_are_version_4() {
    let name = render("{{uuid}}", "", "");
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'), "{name}");
    assert!("89ab".contains(&parts[3][..1]), "{name}");
}

#[test]
fn cuts_to_bytes_on_char_boundary() {
    let t = UsernameTemplate::parse("{{role_name}}").unwrap();
    let role = "é".repeat(40); // 80 bytes
    let name = t.render_with(&inputs("", &role), PG, counter());
    assert_eq!(name.len(), 62);
    assert_eq!(name.chars().count(), 31);
    let long = "x".repeat(100);
    assert_eq!(
        t.render_with(&inputs("", &long), MYSQL, counter())
            .chars()
            .count(),
        32
    );
}

#[test]
fn random_is_uniform_alphabet_only() {
    let t = UsernameTemplate::parse("{{random 64}}").unwrap();
    let name = t.render_with(
        &inputs("", ""),
        Limit {
            max_chars: 64,
            max_bytes: 64,
        },
        counter(),
    );
    assert_eq!(name.len(), 64);
    assert!(name.bytes().all(|b| RANDOM_ALPHABET.contains(&b)));
    // A source that gives only bytes the draw rejects still ends.
    let name = t.render_with(&inputs("", ""), WIDE, |buf: &mut [u8]| buf.fill(255));
    assert_eq!(name.len(), 64);
}

#[test]
fn replace_cannot_grow_a_name_without_bound() {
    let stage = r#" | replace "a" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#;
    let template = format!("{{{{ .RoleName{} }}}}", stage.repeat(15));
    let t = UsernameTemplate::parse(&template).unwrap();
    let name = t.render_with(&inputs("", "aaaa"), WIDE, counter());
    assert_eq!(name.len(), MAX_VALUE_BYTES);
    assert_eq!(t.render_with(&inputs("", "aaaa"), PG, counter()).len(), 63);
}

#[test]
fn hostile_templates_get_clear_errors() {
    let cases: Vec<(String, &str)> = vec![
        ("{{nope}}".into(), "unknown function \"nope\""),
        ("{{.Nope}}".into(), "unknown field .Nope"),
        ("{{ . }}".into(), "unknown field ."),
        ("{{random}}".into(), "random takes a count"),
        (
            "{{random 0}}".into(),
            "random 0: the count must be from 1 to 64",
        ),
        ("{{random 65}}".into(), "from 1 to 64"),
        ("{{random \"5\"}}".into(), "random takes a count"),
        ("{{role_name | upper}}".into(), "unknown function \"upper\""),
        ("{{role_name".into(), "'{{' with no closing '}}'"),
        ("a }} b".into(), "'}}' with no opening '{{'"),
        (
            "{{role_name | truncate x}}".into(),
            "unknown function \"x\"",
        ),
        (
            "{{role_name | truncate 0}}".into(),
            "the length must be at least 1",
        ),
        (
            "{{role_name | truncate -3}}".into(),
            "the length must be at least 1",
        ),
        (
            "{{role_name | truncate 99999999999999999999}}".into(),
            "not a whole number",
        ),
        (
            "{{role_name | truncate \"8\"}}".into(),
            "truncate takes a length and a string",
        ),
        ("{{role_name | truncate_sha256 8}}".into(), "more than 8"),
        (
            "{{ 5 | uppercase }}".into(),
            "uppercase takes a string here, not a number",
        ),
        ("{{ uppercase }}".into(), "uppercase takes one string"),
        (
            "{{ .RoleName | replace \"a\" }}".into(),
            "replace takes what to find",
        ),
        (
            "{{ .RoleName | replace .DisplayName \"b\" }}".into(),
            "must be written in the template as a string",
        ),
        ("{{ timestamp }}".into(), "timestamp takes a Go layout"),
        (
            "{{ timestamp .RoleName }}".into(),
            "the layout must be written",
        ),
        ("{{ unix_time 5 }}".into(), "unix_time takes no arguments"),
        (
            "{{ printf \"%s-%s\" .RoleName }}".into(),
            "2 verbs but 1 values",
        ),
        (
            "{{ printf \"%d\" .RoleName }}".into(),
            "%d takes a number, not a string",
        ),
        (
            "{{ printf \"%x\" .RoleName }}".into(),
            "%x is not supported",
        ),
        ("{{ printf \"50%\" }}".into(), "lone '%'"),
        ("{{ printf }}".into(), "printf takes a format"),
        (
            "{{ .RoleName .DisplayName }}".into(),
            "only a function takes arguments",
        ),
        (
            "{{ .RoleName | .DisplayName }}".into(),
            "only a function can follow '|'",
        ),
        (
            "{{ .RoleName | }}".into(),
            "'|' is not followed by a function",
        ),
        ("{{ }}".into(), "an empty action"),
        ("{{ ( .RoleName }}".into(), "'(' with no closing ')'"),
        ("{{ .RoleName ) }}".into(), "')' with no opening '('"),
        ("{{ \"open }}".into(), "'{{' with no closing '}}'"),
        ("{{ \"bad \\q\" }}".into(), "unknown escape"),
        ("{{ `open }}".into(), "'{{' with no closing '}}'"),
        (
            "{{ if .RoleName }}x{{ end }}".into(),
            "unknown function \"if\"",
        ),
        ("{{ $x := 1 }}".into(), "unexpected '$'"),
        ("{{/* open }}".into(), "comment"),
        ("{{/* x */ }}".into(), "a comment must end with */}}"),
        (
            format!("{}{{{{.RoleName}}}}", "x".repeat(5000)),
            "at most 4096",
        ),
        ("{{.RoleName}}".repeat(65), "more than 64 actions"),
        (
            format!("{{{{ {}.RoleName{} }}}}", "(".repeat(10), ")".repeat(10)),
            "nested deeper than 8",
        ),
        (
            format!("{{{{ .RoleName{} }}}}", " | uppercase".repeat(16)),
            "more than 16 functions",
        ),
    ];
    for (template, expected) in cases {
        let e = refused(&template);
        assert!(
            e.contains(expected),
            "{template:?}: {e:?} lacks {expected:?}"
        );
        assert!(e.len() < 400, "{template:?}: {} bytes of error", e.len());
    }
}

/// Pieces templates are made of, valid and not.
fn token() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "{{",
        "}}",
        "{{- ",
        " -}}",
        "|",
        "(",
        ")",
        ".DisplayName",
        ".RoleName",
        "display_name",
        "role_name",
        "random",
        "truncate",
        "truncate_sha256",
        "uppercase",
        "lowercase",
        "replace",
        "sha256",
        "base64",
        "unix_time",
        "unix_time_millis",
        "timestamp",
        "uuid",
        "printf",
        "\"%s\"",
        "\"%d-%s\"",
        "\"2006-01-02 15:04:05.000 Z07:00\"",
        "\"-\"",
        "\"\"",
        "\"aaaaaaaa\"",
        "0",
        "1",
        "8",
        "9",
        "64",
        "65",
        "-1",
        "99999999999999999999",
        " ",
        "v-",
        "é",
        "/*",
        "*/",
        "`",
        "\"",
        "\\",
        "$",
        "x",
    ])
}

fn limit() -> impl Strategy<Value = Limit> {
    (1usize..80, 1usize..200).prop_map(|(max_chars, max_bytes)| Limit {
        max_chars,
        max_bytes,
    })
}

proptest! {
    #[test]
    fn no_text_panics_and_names_fit_the_limit(
        text in "\\PC{0,300}",
        display_name in "\\PC{0,200}",
        role_name in "\\PC{0,200}",
        limit in limit(),
        seed in any::<u8>(),
    ) {
        if let Ok(t) = UsernameTemplate::parse(&text) {
            let mut n = seed;
            let name = t.render_with(
                &Inputs { display_name: &display_name, role_name: &role_name, unix_time: T },
                limit,
                |buf: &mut [u8]| for b in buf { *b = n; n = n.wrapping_mul(31).wrapping_add(7); },
            );
            prop_assert!(name.chars().count() <= limit.max_chars);
            prop_assert!(name.len() <= limit.max_bytes);
        }
    }

    #[test]
    fn templates_of_vaults_pieces_parse_or_are_refused_and_fit(
        tokens in proptest::collection::vec(token(), 0..40),
        display_name in "\\PC{0,100}",
        role_name in "[a-z_-]{0,100}",
        limit in limit(),
        unix_time in any::<u64>(),
    ) {
        let text = tokens.join(" ");
        match UsernameTemplate::parse(&text) {
            Ok(t) => {
                let inputs = Inputs { display_name: &display_name, role_name: &role_name, unix_time };
                let name = t.render_with(&inputs, limit, counter());
                prop_assert!(name.chars().count() <= limit.max_chars);
                prop_assert!(name.len() <= limit.max_bytes);
                // The same inputs and randomness, the same name.
                prop_assert_eq!(name, t.render_with(&inputs, limit, counter()));
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with("invalid username template: "));
                prop_assert!(e.len() < 400);
            }
        }
    }
}
