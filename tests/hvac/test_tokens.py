#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker.

Drives the token store (create, create-orphan, create through a role,
lookup, lookup-self, lookup-accessor, renew-self, renew, renew-accessor,
revoke, revoke-self, revoke-accessor, revoke-orphan, roles, accessors,
tidy), ACL policies (a token gets 403 where its policies grant nothing),
capabilities (self, of a token, of an accessor) and response wrapping
(wrapped token creation and reads, sys/wrapping/wrap, lookup, rewrap,
unwrap, and hvac's auth_cubbyhole login with a wrapped token).

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
        tests/hvac/.venv/bin/python tests/hvac/test_tokens.py

Run by the end-to-end test
vault_client::hvac_drives_tokens_capabilities_and_wrapping, which starts a
broker for it. Exits non-zero at the first failure, saying which check
failed; prints one line per step on the way.
"""

import os
import sys
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, in_range, step

# Only the database credentials (and `default`, which every token holds).
APP_POLICY = 'path "database/creds/app" { capabilities = ["read"] }'
# May make child tokens.
MAKER_POLICY = 'path "auth/token/create" { capabilities = ["update"] }'


def run(addr, root_token):
    def client(token=None):
        return hvac.Client(url=addr, token=token)

    root = client(root_token)

    step("is_authenticated with the root token")
    check(root.is_authenticated(), "the root token is authenticated")

    step("sys.create_or_update_policy, read_policy, list_policies")
    root.sys.create_or_update_policy(name="hvac-app", policy=APP_POLICY)
    root.sys.create_or_update_policy(name="hvac-maker", policy=MAKER_POLICY)
    rules = root.sys.read_policy(name="hvac-app")["data"]["rules"]
    check(rules == APP_POLICY, "read_policy gives the policy back", rules)
    listed = root.sys.list_policies()["data"]["policies"]
    check({"hvac-app", "hvac-maker", "default", "root"} <= set(listed), "list_policies", listed)

    step("auth.token.create with policies, ttl, display_name, meta")
    created = root.auth.token.create(
        policies=["hvac-app"], ttl="1h", display_name="web", meta={"team": "payments"}
    )
    auth = created["auth"]
    app_token, app_accessor = auth["client_token"], auth["accessor"]
    check(app_token and app_accessor, "a token and an accessor", auth)
    check(sorted(auth["policies"]) == ["default", "hvac-app"], "policies", auth["policies"])
    check(sorted(auth["token_policies"]) == ["default", "hvac-app"], "token_policies", auth)
    check(auth["renewable"] is True and auth["orphan"] is False, "renewable, not an orphan", auth)
    check(auth["token_type"] == "service", "a service token", auth)
    check(in_range(auth["lease_duration"], 3590, 3600), "lease_duration 1h", auth)
    check(auth["metadata"] == {"team": "payments"}, "metadata", auth)

    step("auth.token.lookup")
    looked = root.auth.token.lookup(app_token)["data"]
    check(looked["id"] == app_token, "lookup shows the token", looked)
    check(looked["accessor"] == app_accessor, "accessor", looked)
    check(looked["display_name"] == "token-web", "display_name", looked)
    check(looked["meta"] == {"team": "payments"}, "meta", looked)
    check(looked["path"] == "auth/token/create", "path", looked)
    check(looked["creation_ttl"] == 3600 and in_range(looked["ttl"], 3590, 3600), "ttl", looked)
    check(isinstance(looked["issue_time"], str), "issue_time", looked)
    check(isinstance(looked["expire_time"], str), "expire_time", looked)

    step("a client with that token: is_authenticated, lookup_self")
    app = client(app_token)
    check(app.is_authenticated(), "the app token is authenticated")
    me = app.auth.token.lookup_self()["data"]
    check(me["id"] == app_token and me["accessor"] == app_accessor, "lookup_self", me)

    step("403 (hvac.exceptions.Forbidden) where its policies grant nothing")
    expect(exceptions.Forbidden, "list mounts", app.sys.list_mounted_secrets_engines)
    expect(exceptions.Forbidden, "read a policy", app.sys.read_policy, name="hvac-app")
    expect(exceptions.Forbidden, "look up another token", app.auth.token.lookup, root_token)
    expect(exceptions.Forbidden, "create a child token", app.auth.token.create, policies=["hvac-app"])
    expect(exceptions.Forbidden, "list accessors (sudo)", app.auth.token.list_accessors)

    step("sys.get_capabilities: self, of a token, of an accessor")
    paths = ["database/creds/app", "sys/mounts"]
    want = {"database/creds/app": ["read"], "sys/mounts": ["deny"]}
    for who, answer in [
        ("self", app.sys.get_capabilities(paths=paths)),
        ("token", root.sys.get_capabilities(paths=paths, token=app_token)),
        ("accessor", root.sys.get_capabilities(paths=paths, accessor=app_accessor)),
    ]:
        data = answer["data"]
        for path, caps in want.items():
            check(data.get(path) == caps, f"capabilities ({who}) on {path}", data)
    data = root.sys.get_capabilities(paths=["sys/mounts"])["data"]
    check(data["sys/mounts"] == ["root"], "the root token's capabilities", data)

    step("a read with wrap_ttl, unwrapped by a client holding the wrapping token")
    wrapped = app.read("auth/token/lookup-self", wrap_ttl="1m")
    info = wrapped["wrap_info"]
    check(wrapped.get("data") is None, "a wrapped answer shows no data", wrapped)
    check(info["ttl"] == 60 and info["creation_path"] == "auth/token/lookup-self", "wrap_info", info)
    unwrapped = client(info["token"]).sys.unwrap()
    check(unwrapped["data"]["id"] == app_token, "the unwrapped lookup", unwrapped)
    expect(exceptions.VaultError, "a second unwrap", root.sys.unwrap, info["token"])

    step("auth.token.renew_self, renew, renew_accessor, lookup_accessor")
    renewed = app.auth.token.renew_self(increment="2h")["auth"]
    check(in_range(renewed["lease_duration"], 7190, 7200), "renew_self to 2h", renewed)
    renewed = root.auth.token.renew(app_token, increment="3h")["auth"]
    check(in_range(renewed["lease_duration"], 10790, 10800), "renew to 3h", renewed)
    renewed = root.auth.token.renew_accessor(app_accessor, increment="4h")["auth"]
    check(renewed["client_token"] == "", "renew_accessor does not show the token", renewed)
    check(in_range(renewed["lease_duration"], 14390, 14400), "renew_accessor to 4h", renewed)
    by_accessor = root.auth.token.lookup_accessor(app_accessor)["data"]
    check(by_accessor["id"] == "", "lookup_accessor does not show the token", by_accessor)
    check(by_accessor["accessor"] == app_accessor, "lookup_accessor", by_accessor)
    check(in_range(by_accessor["ttl"], 14390, 14400), "the renewed ttl", by_accessor)

    step("num_uses: a token runs out")
    limited = client(root.auth.token.create(policies=["hvac-app"], num_uses=2)["auth"]["client_token"])
    check(limited.auth.token.lookup_self()["data"]["num_uses"] in (1, 2), "lookup_self with uses")
    check(limited.is_authenticated(), "the second use")
    check(not limited.is_authenticated(), "no third use")

    step("auth.token.create_orphan")
    orphan = root.auth.token.create_orphan(policies=["hvac-app"], ttl="10m")["auth"]
    check(orphan["orphan"] is True, "an orphan", orphan)
    looked = root.auth.token.lookup(orphan["client_token"])["data"]
    check(looked["orphan"] is True and looked["path"] == "auth/token/create-orphan", "lookup", looked)

    step("token roles: create_or_update_role, read_role, list_roles, create with role_name, delete_role")
    root.auth.token.create_or_update_role(
        "hvac-worker", allowed_policies=["hvac-app"], orphan=True, token_period="2h"
    )
    role = root.auth.token.read_role("hvac-worker")["data"]
    check(role["allowed_policies"] == ["hvac-app"] and role["orphan"] is True, "read_role", role)
    check(role["token_period"] == 7200, "the role's period", role)
    keys = root.auth.token.list_roles()["data"]["keys"]
    check(keys == ["hvac-worker"], "list_roles", keys)
    from_role = root.auth.token.create(role_name="hvac-worker", policies=["hvac-app"])["auth"]
    check(from_role["orphan"] is True and from_role["lease_duration"] == 7200, "a role's token", from_role)
    looked = root.auth.token.lookup(from_role["client_token"])["data"]
    check(looked["path"] == "auth/token/create/hvac-worker", "the role's path", looked)
    root.auth.token.delete_role("hvac-worker")
    expect(exceptions.InvalidPath, "read a deleted role", root.auth.token.read_role, "hvac-worker")

    step("a wrapped token creation, logged in with auth_cubbyhole")
    wrapped = root.auth.token.create(policies=["hvac-app"], ttl="15m", wrap_ttl="2m")
    info = wrapped["wrap_info"]
    check(wrapped.get("auth") is None, "a wrapped creation shows no token", wrapped)
    check(info["ttl"] == 120 and info["creation_path"] == "auth/token/create", "wrap_info", info)
    check(bool(info.get("wrapped_accessor")), "wrapped_accessor", info)
    lookup = root.write_data("sys/wrapping/lookup", data={"token": info["token"]})["data"]
    check(lookup["creation_path"] == "auth/token/create", "sys/wrapping/lookup", lookup)
    check(lookup["creation_ttl"] == 120, "sys/wrapping/lookup", lookup)
    receiver = client()
    receiver.auth_cubbyhole(info["token"])
    check(receiver.is_authenticated(), "the unwrapped token works")
    me = receiver.auth.token.lookup_self()["data"]
    check(me["accessor"] == info["wrapped_accessor"], "the unwrapped token is the wrapped one", me)
    expect(exceptions.VaultError, "a spent wrapping token", client().auth_cubbyhole, info["token"])

    step("sys.wrap (default TTL 60 s), rewrap, unwrap")
    wrapped = root.sys.wrap(payload={"api_key": "s3cr3t"})
    first = wrapped["wrap_info"]["token"]
    check(wrapped["wrap_info"]["ttl"] == 60, "sys.wrap's TTL", wrapped["wrap_info"])
    rewrapped = root.write_data("sys/wrapping/rewrap", data={"token": first})["wrap_info"]
    check(rewrapped["token"] != first and rewrapped["ttl"] == 60, "rewrap", rewrapped)
    expect(exceptions.InvalidRequest, "unwrap a rewrapped token", root.sys.unwrap, first)
    data = root.sys.unwrap(rewrapped["token"])["data"]
    check(data == {"api_key": "s3cr3t"}, "unwrap", data)

    step("revoke_and_orphan_children keeps the child; revoke_self ends it")
    parent = root.auth.token.create(policies=["hvac-app", "hvac-maker"])["auth"]["client_token"]
    child_token = client(parent).auth.token.create(policies=["hvac-app"])["auth"]["client_token"]
    root.auth.token.revoke_and_orphan_children(parent)
    check(not client(parent).is_authenticated(), "the revoked parent is not authenticated")
    child = client(child_token)
    check(child.is_authenticated(), "the child lives on")
    check(child.auth.token.lookup_self()["data"]["orphan"] is True, "the child is an orphan")
    child.auth.token.revoke_self()
    check(not child.is_authenticated(), "revoke_self ends the child")

    step("auth.token.list_accessors, revoke_accessor, revoke")
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    check(app_accessor in accessors and orphan["accessor"] in accessors, "list_accessors", accessors)
    root.auth.token.revoke_accessor(app_accessor)
    check(not app.is_authenticated(), "a token revoked by accessor is not authenticated")
    expect(exceptions.VaultError, "lookup_accessor of a revoked token", root.auth.token.lookup_accessor, app_accessor)
    root.auth.token.revoke(orphan["client_token"])
    check(not client(orphan["client_token"]).is_authenticated(), "a revoked token is not authenticated")
    expect(exceptions.VaultError, "lookup of a revoked token", root.auth.token.lookup, orphan["client_token"])

    step("auth.token.tidy")
    root.auth.token.tidy()


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    if not addr or not token:
        print("test_tokens.py: set VAULT_ADDR and VAULT_TOKEN (a root token)", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token))


if __name__ == "__main__":
    sys.exit(main())
