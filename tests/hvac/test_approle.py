#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's AppRole.

The operator enables AppRole (sys.enable_auth_method), writes a policy and
a role, reads the role id and generates a secret id wrapped (wrap_ttl); the
app unwraps it with the wrapping token as its own (sys.unwrap), logs in
(auth.approle.login) and with the login token reads database credentials
(secrets.database.generate_credentials) and gets Forbidden everywhere else.
Then the operator's side: list_roles, read_role, list_secret_id_accessors,
read_secret_id, read_secret_id_accessor, create_custom_secret_id,
destroy_secret_id_accessor, destroy_secret_id, update_role_id, delete_role,
list_auth_methods, and disable_auth_method, which revokes the login's token
and the lease of its credentials.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
    BROKER_TEST_DB_ROLE=app [BROKER_TEST_DB_MOUNT=database] \\
    [BROKER_TEST_DB_USER_PREFIX=<what its usernames start with>] \\
        tests/hvac/.venv/bin/python tests/hvac/test_approle.py

BROKER_TEST_DB_ROLE names a database role, already written, that issues
credentials. Run by the end-to-end test
vault_client::hvac_drives_approle_with_a_wrapped_secret_id, which starts a
broker and prepares the role. Exits non-zero at the first failure, saying
which check failed; prints one line per step on the way.
"""

import os
import sys
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, step

# Where this script enables AppRole: not the default path, so every call
# has to be given its mount_point.
MOUNT = "hvac-approle"
# The one answer every failed login gets.
REFUSED = "invalid role ID or secret ID"


def run(addr, root_token, db_mount, db_role, user_prefix):
    def client(token=None):
        return hvac.Client(url=addr, token=token)

    def refused(what, role_id, secret_id):
        e = expect(
            exceptions.InvalidRequest,
            what,
            client().auth.approle.login,
            role_id,
            secret_id,
            use_token=False,
            mount_point=MOUNT,
        )
        check(e.errors == [REFUSED], f"{what}: the one refusal", e.errors)

    root = client(root_token)
    approle = root.auth.approle

    step("sys.enable_auth_method, list_auth_methods")
    root.sys.enable_auth_method("approle", description="applications", path=MOUNT)
    methods = root.sys.list_auth_methods()["data"]
    mine = methods.get(f"{MOUNT}/")
    check(mine is not None and mine["type"] == "approle", f"{MOUNT}/ listed as approle", methods)
    check(mine["description"] == "applications", "its description", mine)
    check(methods.get("token/", {}).get("type") == "token", "the token store listed", methods)

    step("a policy, and auth.approle.create_or_update_approle with token_policies")
    creds_path = f"{db_mount}/creds/{db_role}"
    root.sys.create_or_update_policy(
        name="hvac-db", policy=f'path "{creds_path}" {{ capabilities = ["read"] }}'
    )
    approle.create_or_update_approle(
        "web",
        token_policies=["hvac-db"],
        token_ttl="10m",
        token_max_ttl="1h",
        secret_id_ttl="1h",
        secret_id_num_uses=5,
        mount_point=MOUNT,
    )

    step("auth.approle.read_role, list_roles, read_role_id")
    role = approle.read_role("web", mount_point=MOUNT)["data"]
    check(role["token_policies"] == ["hvac-db"], "token_policies", role)
    check(role["token_ttl"] == 600 and role["token_max_ttl"] == 3600, "token TTLs", role)
    check(role["secret_id_ttl"] == 3600 and role["secret_id_num_uses"] == 5, "secret id limits", role)
    check(role["bind_secret_id"] is True, "bind_secret_id", role)
    keys = approle.list_roles(mount_point=MOUNT)["data"]["keys"]
    check(keys == ["web"], "list_roles", keys)
    role_id = approle.read_role_id("web", mount_point=MOUNT)["data"]["role_id"]
    check(isinstance(role_id, str) and role_id, "a role id", role_id)

    step("auth.approle.generate_secret_id with wrap_ttl: only a wrapping token leaves")
    wrapped = approle.generate_secret_id(
        "web", metadata={"team": "payments"}, wrap_ttl="2m", mount_point=MOUNT
    )
    info = wrapped["wrap_info"]
    check(wrapped.get("data") is None, "a wrapped answer shows no secret id", wrapped)
    check(info["ttl"] == 120, "wrap_info ttl", info)
    check(info["creation_path"] == f"auth/{MOUNT}/role/web/secret-id", "wrap_info creation_path", info)

    step("the app: sys.unwrap with the wrapping token as its own, once")
    delivered = client(info["token"]).sys.unwrap()["data"]
    secret_id, accessor = delivered["secret_id"], delivered["secret_id_accessor"]
    check(secret_id and accessor, "a secret id and its accessor", delivered)
    check(delivered["secret_id_ttl"] == 3600, "the secret id's TTL", delivered)
    expect(exceptions.VaultError, "a second unwrap", client(info["token"]).sys.unwrap)

    step("the app: auth.approle.login sets the client's token")
    app = client()
    auth = app.auth.approle.login(role_id, secret_id, mount_point=MOUNT)["auth"]
    check(app.is_authenticated(), "the login token is authenticated")
    check(app.token == auth["client_token"], "the client uses the login token", auth)
    check(sorted(auth["policies"]) == ["default", "hvac-db"], "the role's policies", auth)
    check(auth["lease_duration"] == 600 and auth["renewable"] is True, "token_ttl", auth)
    check(auth["metadata"] == {"role_name": "web", "team": "payments"}, "metadata", auth)
    me = app.auth.token.lookup_self()["data"]
    check(me["path"] == f"auth/{MOUNT}/login", "lookup_self: the login path", me)

    step("the app: secrets.database.generate_credentials with the login token")
    creds = app.secrets.database.generate_credentials(name=db_role, mount_point=db_mount)
    username, lease_id = creds["data"]["username"], creds["lease_id"]
    check(username.startswith(user_prefix), f"a username starting {user_prefix!r}", username)
    check(creds["data"]["password"], "a password")
    check(lease_id.startswith(f"{creds_path}/"), "a lease of the role", lease_id)
    print(f"   database user {username}", flush=True)

    step("the app: Forbidden everywhere else")
    for what, fn, args, kwargs in [
        ("list mounts", app.sys.list_mounted_secrets_engines, (), {}),
        ("list auth methods", app.sys.list_auth_methods, (), {}),
        ("read the database role", app.secrets.database.read_role, (db_role,), {"mount_point": db_mount}),
        ("read the role id", app.auth.approle.read_role_id, ("web",), {"mount_point": MOUNT}),
        ("generate a secret id", app.auth.approle.generate_secret_id, ("web",), {"mount_point": MOUNT}),
        ("list secret id accessors", app.auth.approle.list_secret_id_accessors, ("web",), {"mount_point": MOUNT}),
        ("read the policy", app.sys.read_policy, (), {"name": "hvac-db"}),
    ]:
        expect(exceptions.Forbidden, what, fn, *args, **kwargs)

    step("auth.approle.list_secret_id_accessors, read_secret_id, read_secret_id_accessor")
    listed = approle.list_secret_id_accessors("web", mount_point=MOUNT)["data"]["keys"]
    check(listed == [accessor], "list_secret_id_accessors", listed)
    looked = approle.read_secret_id("web", secret_id, mount_point=MOUNT)["data"]
    check(looked["secret_id_accessor"] == accessor, "read_secret_id: its accessor", looked)
    check(looked["secret_id_num_uses"] == 4, "one of five uses spent", looked)
    check(looked["metadata"] == {"team": "payments"}, "read_secret_id: metadata", looked)
    check(isinstance(looked["expiration_time"], str), "read_secret_id: expiration_time", looked)
    check(secret_id not in str(looked), "read_secret_id never shows the secret id", looked)
    by_accessor = approle.read_secret_id_accessor("web", accessor, mount_point=MOUNT)["data"]
    check(by_accessor == looked, "read_secret_id_accessor: the same", by_accessor)

    step("auth.approle.create_custom_secret_id, destroy_secret_id_accessor")
    custom = approle.create_custom_secret_id(
        "web", "hvac-chosen-secret-id", metadata={"pushed": "yes"}, mount_point=MOUNT
    )["data"]
    check(custom["secret_id"] == "hvac-chosen-secret-id", "the chosen secret id", custom)
    other = client().auth.approle.login(
        role_id, "hvac-chosen-secret-id", use_token=False, mount_point=MOUNT
    )["auth"]
    check(other["metadata"] == {"role_name": "web", "pushed": "yes"}, "its metadata", other)
    listed = approle.list_secret_id_accessors("web", mount_point=MOUNT)["data"]["keys"]
    check(sorted(listed) == sorted([accessor, custom["secret_id_accessor"]]), "two accessors", listed)
    approle.destroy_secret_id_accessor("web", custom["secret_id_accessor"], mount_point=MOUNT)
    refused("a login with a secret id destroyed by accessor", role_id, "hvac-chosen-secret-id")

    step("auth.approle.destroy_secret_id")
    approle.destroy_secret_id("web", secret_id, mount_point=MOUNT)
    refused("a login with a destroyed secret id", role_id, secret_id)
    expect(
        exceptions.InvalidPath,
        "no secret ids left to list",
        approle.list_secret_id_accessors,
        "web",
        mount_point=MOUNT,
    )

    step("wrong role id, wrong secret id: the same refusal")
    fresh = approle.generate_secret_id("web", mount_point=MOUNT)["data"]["secret_id"]
    refused("a wrong secret id", role_id, "not-a-secret-id")
    refused("a wrong role id", "not-a-role-id", fresh)

    step("auth.approle.update_role_id")
    approle.update_role_id("web", "hvac-web-role-id", mount_point=MOUNT)
    got = approle.read_role_id("web", mount_point=MOUNT)["data"]["role_id"]
    check(got == "hvac-web-role-id", "the chosen role id", got)
    client().auth.approle.login("hvac-web-role-id", fresh, use_token=False, mount_point=MOUNT)

    step("a secret id that never expires shows Go's zero time")
    approle.create_or_update_approle("ci", token_policies=["hvac-db"], mount_point=MOUNT)
    forever = approle.generate_secret_id("ci", mount_point=MOUNT)["data"]
    check(forever["secret_id_ttl"] == 0, "no TTL", forever)
    looked = approle.read_secret_id("ci", forever["secret_id"], mount_point=MOUNT)["data"]
    check(looked["expiration_time"] == "0001-01-01T00:00:00Z", "expiration_time", looked)
    keys = approle.list_roles(mount_point=MOUNT)["data"]["keys"]
    check(keys == ["ci", "web"], "list_roles", keys)

    step("the app's credentials are leased")
    lease = root.sys.read_lease(lease_id)["data"]
    check(lease["id"] == lease_id, "sys.read_lease", lease)

    step("auth.approle.delete_role")
    approle.delete_role("web", mount_point=MOUNT)
    expect(exceptions.InvalidPath, "read a deleted role", approle.read_role, "web", mount_point=MOUNT)

    step("sys.disable_auth_method revokes the login's token and its credentials")
    root.sys.disable_auth_method(MOUNT)
    check(not app.is_authenticated(), "the login token is revoked")
    expect(exceptions.VaultError, "the credentials' lease is gone", root.sys.read_lease, lease_id)
    methods = root.sys.list_auth_methods()["data"]
    check(f"{MOUNT}/" not in methods, f"{MOUNT}/ no longer listed", methods)


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    db_role = os.environ.get("BROKER_TEST_DB_ROLE")
    db_mount = os.environ.get("BROKER_TEST_DB_MOUNT") or "database"
    user_prefix = os.environ.get("BROKER_TEST_DB_USER_PREFIX", "")
    if not addr or not token or not db_role:
        print(
            "test_approle.py: set VAULT_ADDR, VAULT_TOKEN (a root token) and "
            "BROKER_TEST_DB_ROLE (a database role that issues credentials)",
            file=sys.stderr,
        )
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token, db_mount, db_role, user_prefix))


if __name__ == "__main__":
    sys.exit(main())
