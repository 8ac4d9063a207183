//! The shapes a secret's value takes apart from a plain read: a JSON
//! merge patch applied to it (RFC 7396: `PATCH data/<path>`) and its
//! subkeys, the value with every leaf replaced by `null`
//! (`GET subkeys/<path>`).
//!
//! Both walk a value the API already parsed, so its depth is bounded by the
//! JSON parser's own limit (128 levels); subkeys also stop at the depth
//! asked for. Neither may put a leaf of the value where subkeys are shown.

use serde_json::{Map, Value};

/// The deepest level subkeys show when no depth is asked for (Vault's).
pub const MAX_SUBKEYS_DEPTH: u32 = 100;

/// Applies the merge patch `patch` to `target` (RFC 7396, section 2): an
/// object merges member by member, `null` removes a member, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(object) = target {
        for (name, value) in members {
            if value.is_null() {
                object.remove(name);
            } else {
                merge_patch(object.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// `data`'s keys, nested as they are, every leaf (a value that is not an
/// object, or an empty object) `null`, down to `depth` levels (0: to
/// [`MAX_SUBKEYS_DEPTH`]); an object at the last level is shown as `null`.
pub fn subkeys(data: &Map<String, Value>, depth: u32) -> Value {
    let depth = if depth == 0 {
        MAX_SUBKEYS_DEPTH
    } else {
        depth.min(MAX_SUBKEYS_DEPTH)
    };
    Value::Object(level(data, depth))
}

fn level(data: &Map<String, Value>, depth_left: u32) -> Map<String, Value> {
    data.iter()
        .map(|(name, value)| {
            let shown = match value {
                Value::Object(inner) if depth_left > 1 && !inner.is_empty() => {
                    Value::Object(level(inner, depth_left - 1))
                }
                _ => Value::Null,
            };
            (name.clone(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn patched(target: Value, patch: Value) -> Value {
        let mut target = target;
        merge_patch(&mut target, &patch);
        target
    }

    /// The examples of RFC 7396, appendix A.
    #[test]
    fn the_rfcs_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a","b"]), json!(["c","d"]), json!(["c","d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1,2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (target, patch, expected) in cases {
            assert_eq!(patched(target.clone(), patch.clone()), expected, "{target} + {patch}");
        }
    }

    #[test]
    fn subkeys_show_structure_never_values() {
        let data = json!({
            "foo": "abc",
            "bar": {"baz": "def", "deeper": {"x": 1}},
            "quux": {},
            "list": [1, 2],
        });
        let data = data.as_object().unwrap();
        assert_eq!(
            subkeys(data, 0),
            json!({"foo": null, "bar": {"baz": null, "deeper": {"x": null}}, "quux": null, "list": null})
        );
        assert_eq!(
            subkeys(data, 1),
            json!({"foo": null, "bar": null, "quux": null, "list": null})
        );
        assert_eq!(
            subkeys(data, 2),
            json!({"foo": null, "bar": {"baz": null, "deeper": null}, "quux": null, "list": null})
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// No `null` member in objects reached through objects (an array is
    /// replaced whole by a patch, nulls and all).
    fn no_nulls_in_objects(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.values().all(|v| !v.is_null() && no_nulls_in_objects(v)),
            _ => true,
        }
    }

    fn leaves(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => m.values().for_each(|v| leaves(v, out)),
            other => out.push(other.clone()),
        }
    }

    proptest! {
        /// Applying a patch twice is applying it once (RFC 7396 patches are
        /// idempotent), and a patch never leaves a `null` member behind
        /// where the patch put one.
        #[test]
        fn a_patch_is_idempotent(target in json_value(), patch in json_value()) {
            let once = patched(target.clone(), patch.clone());
            let twice = patched(once.clone(), patch.clone());
            prop_assert_eq!(&once, &twice);
            if patch.is_object() && no_nulls_in_objects(&target) {
                prop_assert!(no_nulls_in_objects(&once));
            }
        }

        /// A patch's own members are what the result holds for them.
        #[test]
        fn the_patch_wins_where_it_speaks(target in json_value(), patch in json_value()) {
            let result = patched(target, patch.clone());
            if let (Value::Object(p), Value::Object(r)) = (&patch, &result) {
                for (k, v) in p {
                    if v.is_null() {
                        prop_assert!(!r.contains_key(k));
                    } else if !v.is_object() {
                        prop_assert_eq!(r.get(k), Some(v));
                    }
                }
            } else if !patch.is_object() {
                prop_assert_eq!(result, patch);
            }
        }

        /// Subkeys carry no leaf of the value: every leaf is `null`, at any
        /// depth asked for.
        #[test]
        fn subkeys_hold_only_nulls(data in json_value(), depth in 0u32..6) {
            if let Value::Object(map) = &data {
                let shown = subkeys(map, depth);
                let mut found = Vec::new();
                leaves(&shown, &mut found);
                prop_assert!(found.iter().all(Value::is_null), "{}", shown);
            }
        }
    }
}
