#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's JWT
auth method: the operator enables it (sys.enable_auth_method), configures
a public key (auth.jwt.configure) and a role (auth.jwt.create_role); a job
logs in with its JWT (auth.jwt.jwt_login) and its token can look itself up
and nothing more; a JWT for another audience is refused.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
    BROKER_TEST_JWT=<a JWT, aud "broker", sub "job-7"> \\
    BROKER_TEST_JWT_OTHER=<the same for another audience> \\
    BROKER_TEST_JWT_PUBKEY=<the PEM public key that signed them> \\
        tests/hvac/.venv/bin/python tests/hvac/test_jwt.py

Run by vault_client::hvac_logs_in_with_a_jwt, which signs the tokens.
"""

import os
import sys
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, step

MOUNT = "hvac-jwt"


def run(addr, root_token, jwt, other, pubkey):
    root = hvac.Client(url=addr, token=root_token)

    step("sys.enable_auth_method and auth.jwt.configure")
    root.sys.enable_auth_method("jwt", path=MOUNT)
    root.auth.jwt.configure(jwt_validation_pubkeys=[pubkey], path=MOUNT)
    root.sys.create_or_update_policy(
        "ci", 'path "auth/token/lookup-self" { capabilities = ["read"] }'
    )

    step("auth.jwt.create_role")
    root.auth.jwt.create_role(
        name="ci",
        role_type="jwt",
        bound_audiences=["broker"],
        user_claim="sub",
        allowed_redirect_uris=[],
        token_policies=["ci"],
        token_ttl="5m",
        path=MOUNT,
    )
    role = root.auth.jwt.read_role("ci", path=MOUNT)["data"]
    check(role["bound_audiences"] == ["broker"], "the role's audiences", role)

    step("auth.jwt.jwt_login")
    app = hvac.Client(url=addr)
    auth = app.auth.jwt.jwt_login(role="ci", jwt=jwt, path=MOUNT)["auth"]
    check(auth["policies"] == ["ci", "default"], "the role's policy and default", auth)
    app.token = auth["client_token"]
    check(app.is_authenticated(), "the login's token is live")
    me = app.auth.token.lookup_self()["data"]
    check(me["path"] == f"auth/{MOUNT}/login", "the token's path", me["path"])
    expect(exceptions.Forbidden, "the token lists no mounts", app.sys.list_mounted_secrets_engines)

    step("a JWT for another audience")
    expect(
        exceptions.InvalidRequest,
        "another audience",
        hvac.Client(url=addr).auth.jwt.jwt_login,
        role="ci",
        jwt=other,
        path=MOUNT,
    )


def main():
    env = [os.environ.get(n) for n in
           ("VAULT_ADDR", "VAULT_TOKEN", "BROKER_TEST_JWT", "BROKER_TEST_JWT_OTHER", "BROKER_TEST_JWT_PUBKEY")]
    if not all(env):
        print("test_jwt.py: set VAULT_ADDR, VAULT_TOKEN and the BROKER_TEST_JWT* variables", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {env[0]}", flush=True)
    return finish(lambda: run(*env))


if __name__ == "__main__":
    sys.exit(main())
