#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against password
policies and the database engine's password_policy and username_template.

Writes, reads, lists and deletes a password policy through hvac's generic
paths (it has no helper of its own for them), generates passwords from it,
configures a PostgreSQL connection with hvac's database helper (its
password_policy and username_template go through as Vault's fields), and
checks that issued credentials follow both.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
    PG_HOST=127.0.0.1 PG_PORT=5432 PG_USER=postgres PG_PASSWORD=... PG_DATABASE=postgres \\
        tests/hvac/.venv/bin/python tests/hvac/test_password_policies.py

Run by the end-to-end test
password_policies::hvac_writes_password_policies_and_issues_from_them,
which starts a broker and a PostgreSQL for it.
"""

import os
import re
import sys

import hvac
from hvac import exceptions

from checks import check, expect, finish, step

POLICY = """length = 20
rule "charset" {
  charset   = "abcdef"
  min-chars = 4
}
rule "charset" {
  charset   = "0123456789"
  min-chars = 4
}
rule "charset" {
  charset   = "!#%"
  min-chars = 2
}
"""


def satisfies(password):
    return (
        len(password) == 20
        and all(c in "abcdef0123456789!#%" for c in password)
        and sum(c in "abcdef" for c in password) >= 4
        and sum(c in "0123456789" for c in password) >= 4
        and sum(c in "!#%" for c in password) >= 2
    )


def run(addr, root_token, pg):
    client = hvac.Client(url=addr, token=root_token)

    step("write, read and list a password policy")
    client.write_data("sys/policies/password/hvac-pw", data={"policy": POLICY})
    read = client.read("sys/policies/password/hvac-pw")
    check(read["data"]["policy"] == POLICY, "the policy back as written", read)
    listed = client.list("sys/policies/password")
    check("hvac-pw" in listed["data"]["keys"], "list names it", listed)

    step("generate passwords from it")
    seen = set()
    for _ in range(20):
        password = client.read("sys/policies/password/hvac-pw/generate")["data"]["password"]
        check(satisfies(password), "a password that meets every rule", password)
        seen.add(password)
    check(len(seen) == 20, "every password is new", seen)

    step("a policy that cannot be met is refused")
    expect(
        exceptions.InvalidRequest,
        "min-chars beyond the length",
        client.write_data,
        "sys/policies/password/hvac-bad",
        data={"policy": 'length = 4\nrule "charset" {\n  charset = "ab"\n  min-chars = 5\n}\n'},
    )

    step("database.configure with password_policy and username_template")
    client.sys.enable_secrets_engine("database", path="hvacdb")
    url = "postgresql://{{username}}:{{password}}@%s:%s/%s?sslmode=disable" % (
        pg["host"],
        pg["port"],
        pg["database"],
    )
    client.secrets.database.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        connection_url=url,
        username=pg["user"],
        password=pg["password"],
        allowed_roles=["app"],
        password_policy="hvac-pw",
        username_template='{{ printf "hv-%s-%s" (.RoleName | uppercase) (random 10) }}',
        mount_point="hvacdb",
    )
    config = client.secrets.database.read_connection(name="pg", mount_point="hvacdb")
    check(config["data"]["password_policy"] == "hvac-pw", "read back", config["data"])
    client.secrets.database.create_role(
        name="app",
        db_name="pg",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
        ],
        default_ttl="1h",
        mount_point="hvacdb",
    )

    step("database.generate_credentials follows both")
    creds = client.secrets.database.generate_credentials(name="app", mount_point="hvacdb")
    username, password = creds["data"]["username"], creds["data"]["password"]
    check(re.fullmatch(r"hv-APP-[A-Za-z0-9]{10}", username), "a name from the template", username)
    check(satisfies(password), "a password from the policy", password)
    print(f"issued {username}", flush=True)

    step("a template that cannot work is refused when written")
    expect(
        exceptions.InvalidRequest,
        "an unknown function",
        client.secrets.database.configure,
        name="pg2",
        plugin_name="postgresql-database-plugin",
        connection_url=url,
        username=pg["user"],
        password=pg["password"],
        username_template="{{ .RoleName | upper }}",
        mount_point="hvacdb",
    )
    step("a policy that does not exist is refused when written")
    expect(
        exceptions.InvalidRequest,
        "a missing policy",
        client.secrets.database.configure,
        name="pg3",
        plugin_name="postgresql-database-plugin",
        connection_url=url,
        username=pg["user"],
        password=pg["password"],
        password_policy="nope",
        mount_point="hvacdb",
    )

    step("revoke, and delete the policy")
    client.sys.revoke_prefix("hvacdb/creds/app")
    client.delete("sys/policies/password/hvac-pw")
    # hvac's read answers None for a 404.
    gone = client.read("sys/policies/password/hvac-pw/generate")
    check(gone is None, "no password from a deleted policy (404)", gone)
    check(client.list("sys/policies/password") is None, "an empty list (404)")


if __name__ == "__main__":
    pg = {k: os.environ[f"PG_{k.upper()}"] for k in ("host", "port", "user", "password", "database")}
    sys.exit(finish(lambda: run(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"], pg)))
