//! Parsing and matching, case by case against Vault's documented rules.

use super::*;

fn acl(text: &str) -> Acl {
    match Policy::parse("test", text) {
        Ok(policy) => Acl::new([&policy]),
        Err(e) => panic!("{e}"),
    }
}

fn caps(acl: &Acl, path: &str) -> Vec<&'static str> {
    acl.capabilities(path)
        .effective()
        .into_iter()
        .map(Capability::as_str)
        .collect()
}

fn refused(text: &str) -> String {
    match Policy::parse("test", text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hcl_and_json_read_the_same() {
    let hcl = Policy::parse(
        "App",
        r#"
        # comments are fine
        path "/secret/data/app" { capabilities = ["read", "list"] }
        path "database/creds/+" { policy = "write" }
        "#,
    )
    .unwrap();
    let json = Policy::parse(
        "app",
        r#"{"path": {"secret/data/app": {"capabilities": ["read", "list"]},
                     "database/creds/+": {"policy": "write"}}}"#,
    )
    .unwrap();
    assert_eq!(hcl.name(), "app");
    // JSON objects come back sorted; the order of rules carries no meaning.
    let mut sorted = json.rules().to_vec();
    sorted.sort_by(|a, b| b.path.cmp(&a.path));
    assert_eq!(hcl.rules(), sorted);
    assert_eq!(hcl.rules()[0].path, "secret/data/app", "leading / dropped");
    let write = hcl.rules()[1].capabilities;
    for c in [
        Capability::Read,
        Capability::List,
        Capability::Create,
        Capability::Update,
        Capability::Delete,
    ] {
        assert!(write.allows(c), "legacy write grants {c}");
    }
    assert!(!write.allows(Capability::Sudo));
}

#[test]
fn what_is_not_understood_is_refused() {
    assert!(
        refused(r#"path "a" { capabilities = ["reed"] }"#).contains("unknown capability \"reed\"")
    );
    assert!(
        refused("path \"a\" {\n capabilities = [\"read\"]\n allowed_parameters = { x = [] }\n}")
            .contains("allowed_parameters is not supported")
    );
    assert!(
        refused(r#"path "a/*/b" { capabilities = ["read"] }"#).contains("'*' may only end a path")
    );
    assert!(refused(r#"path "a+b/c" { capabilities = ["read"] }"#).contains("whole path segment"));
    assert!(refused(r#"path "kv/+*" { capabilities = ["read"] }"#).contains("whole path segment"));
    assert!(
        refused(r#"path "kv/{{identity.entity.id}}/*" { capabilities = ["read"] }"#)
            .contains("templated paths")
    );
    assert!(refused(r#"path "a" { capabilities = "read" }"#).contains("not a string"));
    assert_eq!(
        refused(r#"path "a" { capabilities = ["read"] "#),
        "failed to parse policy: line 1, column 36: invalid block body; expected `}`, newline or identifier"
    );
    assert!(
        refused(r#"{"path": {"a": {"capabilities": ["read"]}}"#)
            .starts_with("failed to parse policy")
    );
    assert!(refused(r#"paths "a" { capabilities = ["read"] }"#).contains("unknown block"));
    assert!(refused(r#"path "a" "b" { capabilities = ["read"] }"#).contains("one label"));
    assert!(
        refused(r#"path "a" { capability = ["read"] }"#).contains("unknown key \"capability\"")
    );
    assert!(
        refused(r#"{"path": {"a": {"capabilities": [1]}}}"#).contains("not a list of non-strings")
    );
    // An empty list, or none, is a rule that grants nothing, as in Vault;
    // a comment is allowed.
    for text in [
        r#"path "a" { capabilities = [] }"#,
        r#"path "a" {}"#,
        "path \"a\" {\n  comment = \"why\"\n  capabilities = []\n}",
    ] {
        let policy = Policy::parse("x", text).unwrap();
        assert_eq!(policy.rules()[0].capabilities, Capabilities::NONE, "{text}");
    }
}

#[test]
fn names_are_checked_and_root_is_reserved() {
    assert!(Policy::parse("root", "").is_err());
    assert!(Policy::parse("ROOT", "").is_err());
    for bad in ["", "a/b", "a b", "..", &"x".repeat(129)] {
        assert!(normalize_name(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(normalize_name("Team.App-1_x").unwrap(), "team.app-1_x");
}

#[test]
fn nothing_matched_means_nothing_allowed() {
    let acl = acl(r#"path "secret/data/app" { capabilities = ["read"] }"#);
    assert!(acl.allows("secret/data/app", Capability::Read));
    assert!(!acl.allows("secret/data/app", Capability::Update));
    assert!(!acl.allows("secret/data/app2", Capability::Read));
    assert!(!acl.allows("secret/data", Capability::Read));
    assert_eq!(caps(&acl, "elsewhere"), ["deny"]);
    assert!(!Acl::default().allows("sys/mounts", Capability::Read));
}

#[test]
fn a_glob_matches_by_prefix_and_the_longest_prefix_wins() {
    let acl = acl(r#"
        path "secret/*" { capabilities = ["read"] }
        path "secret/super-secret/*" { capabilities = ["deny"] }
        path "kv/team-*" { capabilities = ["list"] }
        "#);
    assert_eq!(caps(&acl, "secret/app"), ["read"]);
    assert_eq!(caps(&acl, "secret/a/b/c"), ["read"]);
    assert_eq!(caps(&acl, "secret/super-secret/x"), ["deny"]);
    // `secret/*` does not cover `secret` itself.
    assert_eq!(caps(&acl, "secret"), ["deny"]);
    assert_eq!(caps(&acl, "kv/team-a/x"), ["list"]);
    assert_eq!(caps(&acl, "kv/team"), ["deny"]);
}

#[test]
fn an_exact_rule_beats_any_wildcard() {
    let acl = acl(r#"
        path "secret/*" { capabilities = ["deny"] }
        path "secret/+/app" { capabilities = ["deny"] }
        path "secret/team/app" { capabilities = ["read"] }
        "#);
    assert_eq!(caps(&acl, "secret/team/app"), ["read"]);
    assert_eq!(caps(&acl, "secret/other/app"), ["deny"]);
}

#[test]
fn a_plus_matches_exactly_one_segment() {
    let acl = acl(r#"
        path "secret/+/teamb" { capabilities = ["read"] }
        path "secret/+/team-*" { capabilities = ["update"] }
        path "+/config" { capabilities = ["list"] }
        "#);
    assert_eq!(caps(&acl, "secret/foo/teamb"), ["read"]);
    assert_eq!(caps(&acl, "secret/teamb"), ["deny"]);
    assert_eq!(caps(&acl, "secret/foo/bar/teamb"), ["deny"]);
    assert_eq!(caps(&acl, "secret/foo/teamb/x"), ["deny"]);
    assert_eq!(caps(&acl, "secret/foo/team-a"), ["update"]);
    assert_eq!(caps(&acl, "secret/foo/team-a/b/c"), ["update"]);
    assert_eq!(caps(&acl, "database/config"), ["list"]);
}

#[test]
fn among_wildcards_the_most_specific_wins() {
    // 1. The later first wildcard wins.
    let acl1 = acl(r#"
        path "secret/+/app/*" { capabilities = ["read"] }
        path "secret/team/+/*" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&acl1, "secret/team/app/x"), ["update"]);
    // A glob's `*` counts as its first wildcard.
    let glob = acl(r#"
        path "secret/team/*" { capabilities = ["read"] }
        path "secret/+/app" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&glob, "secret/team/app"), ["read"]);
    // 2. Same first wildcard: the one without a trailing glob wins.
    let acl2 = acl(r#"
        path "secret/+/app*" { capabilities = ["read"] }
        path "secret/+/app" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&acl2, "secret/x/app"), ["update"]);
    assert_eq!(caps(&acl2, "secret/x/apps"), ["read"]);
    // 3. Then fewer `+` segments.
    let acl3 = acl(r#"
        path "secret/+/+/*" { capabilities = ["read"] }
        path "secret/+/b/*" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&acl3, "secret/a/b/c"), ["update"]);
    // 4. Then the longer pattern.
    let acl4 = acl(r#"
        path "secret/+/b*" { capabilities = ["read"] }
        path "secret/+/bc*" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&acl4, "secret/a/bcd"), ["update"]);
    // 5. Then the lexically greater.
    let acl5 = acl(r#"
        path "+/+/a" { capabilities = ["read"] }
        path "+/a/+" { capabilities = ["update"] }
        "#);
    assert_eq!(caps(&acl5, "a/a/a"), ["update"]);
}

#[test]
fn rules_for_one_pattern_merge_across_policies_and_deny_wins() {
    let reader = Policy::parse("reader", r#"path "secret/*" { capabilities = ["read"] }"#).unwrap();
    let writer =
        Policy::parse("writer", r#"path "secret/*" { capabilities = ["update"] }"#).unwrap();
    let blocker =
        Policy::parse("blocker", r#"path "secret/*" { capabilities = ["deny"] }"#).unwrap();
    let both = Acl::new([&reader, &writer]);
    assert_eq!(caps(&both, "secret/x"), ["read", "update"]);
    let denied = Acl::new([&reader, &writer, &blocker]);
    assert_eq!(caps(&denied, "secret/x"), ["deny"]);
    // Across policies too, the more specific pattern wins over a broader deny.
    let narrow =
        Policy::parse("narrow", r#"path "secret/app" { capabilities = ["read"] }"#).unwrap();
    assert_eq!(caps(&Acl::new([&blocker, &narrow]), "secret/app"), ["read"]);
}

#[test]
fn root_allows_everything() {
    let root = Policy::root();
    let acl = Acl::new([&root]);
    assert!(acl.allows("sys/audit/file", Capability::Sudo));
    assert!(acl.allows("anything/at/all", Capability::Delete));
    assert!(!acl.capabilities("x").contains(Capability::Deny));
}

#[test]
fn a_list_request_matches_rules_written_without_its_slash() {
    let acl = acl(r#"
        path "secret/metadata" { capabilities = ["list"] }
        path "+/sys/policies/acl" { capabilities = ["list"] }
        path "kv/*" { capabilities = ["deny"] }
        path "kv/apps" { capabilities = ["list"] }
        "#);
    assert!(acl.allows("secret/metadata/", Capability::List));
    assert!(acl.allows("ns/sys/policies/acl/", Capability::List));
    // Exact rules come before wildcards, with or without the slash.
    assert!(acl.allows("kv/apps/", Capability::List));
    // Only for lists.
    assert!(!acl.allows("secret/metadata/", Capability::Read));
    // Wildcards see the path without its slash first, as in Vault.
    let globs = self::acl(
        r#"
        path "secret/foo*" { capabilities = ["deny"] }
        path "secret/foo/*" { capabilities = ["list"] }
        "#,
    );
    assert!(!globs.allows("secret/foo/", Capability::List));
    assert!(globs.allows("secret/foo/x", Capability::List));
}

/// A list on a root-protected path needs `list` and `sudo` from the rule
/// that decides it, as Vault takes both from one matched rule.
#[test]
fn a_list_takes_list_and_sudo_from_the_one_rule_that_matches() {
    let slashed = acl(r#"path "auth/token/accessors/" { capabilities = ["list", "sudo"] }"#);
    let granted = slashed.granted("auth/token/accessors/", true);
    assert!(granted.allows(Capability::List) && granted.allows(Capability::Sudo));
    let bare = acl(r#"path "auth/token/accessors" { capabilities = ["list", "sudo"] }"#);
    let granted = bare.granted("auth/token/accessors/", true);
    assert!(granted.allows(Capability::List) && granted.allows(Capability::Sudo));
    // `sudo` from a rule that does not decide the list does not count.
    let split = acl(r#"
        path "auth/token/accessors/" { capabilities = ["list"] }
        path "auth/token/accessors" { capabilities = ["sudo"] }
        "#);
    let granted = split.granted("auth/token/accessors/", true);
    assert!(granted.allows(Capability::List) && !granted.allows(Capability::Sudo));
    let glob = acl(r#"
        path "sys/leases/lookup/db/" { capabilities = ["list"] }
        path "sys/leases/lookup/*" { capabilities = ["sudo", "list"] }
        "#);
    assert!(
        !glob
            .granted("sys/leases/lookup/db/", true)
            .allows(Capability::Sudo)
    );
    // Not a list: the path as it is.
    assert!(
        bare.granted("auth/token/accessors", false)
            .allows(Capability::Sudo)
    );
    assert!(
        !slashed
            .granted("auth/token/accessors", false)
            .allows(Capability::Sudo)
    );
}

#[test]
fn a_repeated_json_key_merges_rather_than_replaces() {
    let policy = Policy::parse(
        "x",
        r#"{"path": {"secret/*": {"capabilities": ["deny"]},
                     "secret/*": {"capabilities": ["read"]}},
            "path": {"kv/*": {"capabilities": ["read"], "capabilities": ["list"]}}}"#,
    )
    .unwrap();
    let acl = Acl::new([&policy]);
    assert_eq!(caps(&acl, "secret/x"), ["deny"]);
    assert_eq!(caps(&acl, "kv/x"), ["read", "list"]);
}

#[test]
fn nested_plus_rules() {
    let acl = acl(r#"
        path "+/+/b" { capabilities = ["list"] }
        path "a/+/b" { capabilities = ["update"] }
        "#);
    // Both match `a/q/b`; the later first wildcard wins.
    assert_eq!(caps(&acl, "a/q/b"), ["update"]);
    assert_eq!(caps(&acl, "z/q/b"), ["list"]);
    assert_eq!(caps(&acl, "z/q/b/c"), ["deny"]);
}

#[test]
fn the_default_policy_parses_and_grants_self_service_only() {
    let default = Policy::parse(Policy::DEFAULT, DEFAULT_POLICY).unwrap();
    let acl = Acl::new([&default]);
    assert!(acl.allows("auth/token/lookup-self", Capability::Read));
    assert!(acl.allows("sys/leases/renew", Capability::Update));
    assert!(!acl.allows("sys/leases/revoke-prefix/database/", Capability::Update));
    assert!(!acl.allows("sys/policies/acl/default", Capability::Update));
}
