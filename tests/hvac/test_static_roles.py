#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's static roles.

secrets.database: create_static_role (rotation_period), read_static_role,
list_static_roles, get_static_credentials, rotate_static_role_credentials
(the password changes and last_vault_rotation moves), create_static_role
again to update it, and delete_static_role.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
    BROKER_TEST_DB_CONFIG=pg BROKER_TEST_DB_ACCOUNT=<an existing account> \\
    [BROKER_TEST_DB_MOUNT=database] \\
        tests/hvac/.venv/bin/python tests/hvac/test_static_roles.py

Run by the end-to-end test static_roles::hvac_drives_static_roles, which
makes the account and the connection config, and checks afterwards that
the password the script last saw logs in (passed back on stdout as
`last password: …`). Exits non-zero at the first failure.
"""

import os
import sys
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, step


# hvac requires rotation_statements; these are the plugin's default.
ALTER = ['ALTER ROLE "{{name}}" WITH PASSWORD \'{{password}}\'']


def run(addr, token, mount, config, account):
    client = hvac.Client(url=addr, token=token)
    db = client.secrets.database

    step("create_static_role, read_static_role, list_static_roles")
    db.create_static_role(
        "hvac-static",
        db_name=config,
        username=account,
        rotation_statements=ALTER,
        rotation_period=3600,
        mount_point=mount,
    )
    role = db.read_static_role("hvac-static", mount_point=mount)["data"]
    check(role["username"] == account and role["db_name"] == config, "the role read back", role)
    check(role["rotation_period"] == 3600, "rotation_period in seconds", role)
    keys = db.list_static_roles(mount_point=mount)["data"]["keys"]
    check(keys == ["hvac-static"], "the one static role listed", keys)

    step("get_static_credentials")
    first = db.get_static_credentials("hvac-static", mount_point=mount)["data"]
    check(first["username"] == account, "the account", first)
    check(0 < first["ttl"] <= 3600, "ttl to the next rotation", first)

    step("rotate_static_role_credentials")
    db.rotate_static_role_credentials("hvac-static", mount_point=mount)
    second = db.get_static_credentials("hvac-static", mount_point=mount)["data"]
    check(second["password"] != first["password"], "a new password", None)
    check(second["last_vault_rotation"] >= first["last_vault_rotation"], "rotation time moves", second)

    step("create_static_role again updates it; username cannot change")
    db.create_static_role(
        "hvac-static",
        db_name=config,
        username=account,
        rotation_statements=ALTER,
        rotation_period=7200,
        mount_point=mount,
    )
    check(
        db.read_static_role("hvac-static", mount_point=mount)["data"]["rotation_period"] == 7200,
        "the new period",
    )
    expect(
        exceptions.InvalidRequest,
        "another username",
        db.create_static_role,
        "hvac-static",
        db_name=config,
        username=account + "-other",
        rotation_statements=ALTER,
        rotation_period=7200,
        mount_point=mount,
    )
    print(f"last password: {second['password']}", flush=True)

    step("delete_static_role")
    db.delete_static_role("hvac-static", mount_point=mount)
    expect(exceptions.InvalidPath, "gone", db.read_static_role, "hvac-static", mount_point=mount)


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    mount = os.environ.get("BROKER_TEST_DB_MOUNT") or "database"
    config = os.environ.get("BROKER_TEST_DB_CONFIG")
    account = os.environ.get("BROKER_TEST_DB_ACCOUNT")
    if not addr or not token or not config or not account:
        print(
            "test_static_roles.py: set VAULT_ADDR, VAULT_TOKEN (a root token), "
            "BROKER_TEST_DB_CONFIG and BROKER_TEST_DB_ACCOUNT",
            file=sys.stderr,
        )
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token, mount, config, account))


if __name__ == "__main__":
    sys.exit(main())
