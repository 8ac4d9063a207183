#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's cert method.

Over TLS (VAULT_CACERT names the certificate the broker serves): the
operator enables the cert method (sys.enable_auth_method), writes a policy
and trusts the CA of the broker's PKI mount for logins
(auth.cert.create_ca_certificate_role, read back with
read_ca_certificate_role and list_certificate_roles); the app gets a client
certificate from that PKI (secrets.pki.generate_certificate), logs in with
it (auth.cert.login with cert_pem and key_pem) and with the login token
reads database credentials (secrets.database.generate_credentials) and gets
Forbidden everywhere else. A certificate whose name the entry does not
allow is refused. Then delete_certificate_role, and disable_auth_method,
which revokes the login's token and the lease of its credentials.

    VAULT_ADDR=https://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
    VAULT_CACERT=<the listener's certificate> \\
    BROKER_TEST_DB_ROLE=app [BROKER_TEST_DB_MOUNT=database] \\
    BROKER_TEST_PKI_ROLE=client [BROKER_TEST_PKI_MOUNT=pki] \\
    BROKER_TEST_PKI_DOMAIN=example.com \\
        tests/hvac/.venv/bin/python tests/hvac/test_cert.py

BROKER_TEST_DB_ROLE names a database role, already written, that issues
credentials; BROKER_TEST_PKI_ROLE a PKI role that issues client
certificates for names under BROKER_TEST_PKI_DOMAIN. Run by the end-to-end
test vault_client::hvac_logs_in_with_a_certificate_from_the_brokers_pki,
which starts a TLS broker and prepares both. Exits non-zero at the first
failure, saying which check failed; prints one line per step on the way.
"""

import os
import sys
import tempfile
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, step

# Where this script enables the method: not the default path, so every
# call has to be given its mount_point.
MOUNT = "hvac-cert"


def run(addr, root_token, env):
    root = hvac.Client(url=addr, token=root_token)
    cert = root.auth.cert
    pki_mount, pki_role, domain = env["pki_mount"], env["pki_role"], env["domain"]

    step("sys.enable_auth_method, list_auth_methods")
    root.sys.enable_auth_method("cert", description="services", path=MOUNT)
    methods = root.sys.list_auth_methods()["data"]
    mine = methods.get(f"{MOUNT}/")
    check(mine is not None and mine["type"] == "cert", f"{MOUNT}/ listed as cert", methods)

    step("a policy, and auth.cert.create_ca_certificate_role with the PKI's CA")
    creds_path = f"{env['db_mount']}/creds/{env['db_role']}"
    root.sys.create_or_update_policy(
        name="hvac-cert-db", policy=f'path "{creds_path}" {{ capabilities = ["read"] }}'
    )
    ca = root.secrets.pki.read_ca_certificate(mount_point=pki_mount)
    check("BEGIN CERTIFICATE" in ca, "secrets.pki.read_ca_certificate: PEM", ca)
    cert.create_ca_certificate_role(
        "services",
        certificate=ca,
        allowed_common_names=[f"api.{domain}"],
        token_policies=["hvac-cert-db"],
        token_ttl="10m",
        mount_point=MOUNT,
    )

    step("read_ca_certificate_role, list_certificate_roles")
    entry = cert.read_ca_certificate_role("services", mount_point=MOUNT)["data"]
    check(entry["certificate"].strip() == ca.strip(), "the CA read back", entry)
    check(entry["allowed_common_names"] == [f"api.{domain}"], "allowed_common_names", entry)
    check(entry["token_policies"] == ["hvac-cert-db"], "token_policies", entry)
    check(entry["token_ttl"] == 600, "token_ttl in seconds", entry)
    listed = cert.list_certificate_roles(mount_point=MOUNT)["data"]["keys"]
    check(listed == ["services"], "the one entry listed", listed)

    with tempfile.TemporaryDirectory() as scratch:

        def client_cert(cn):
            """A certificate for cn from the PKI: (cert file, key file)."""
            issued = root.secrets.pki.generate_certificate(
                name=pki_role, common_name=cn, mount_point=pki_mount
            )["data"]
            cert_file = os.path.join(scratch, f"{cn}.pem")
            key_file = os.path.join(scratch, f"{cn}.key")
            with open(cert_file, "w") as f:
                f.write(issued["certificate"])
            with open(key_file, "w") as f:
                f.write(issued["private_key"])
            return cert_file, key_file

        step("the app: secrets.pki.generate_certificate, then auth.cert.login")
        cert_file, key_file = client_cert(f"api.{domain}")
        app = hvac.Client(url=addr)
        auth = app.auth.cert.login(
            name="services", cert_pem=cert_file, key_pem=key_file, mount_point=MOUNT
        )["auth"]
        check(
            sorted(auth["policies"]) == ["default", "hvac-cert-db"],
            "the entry's policy and default",
            auth,
        )
        check(auth["lease_duration"] == 600, "token_ttl", auth)
        check(auth["metadata"]["common_name"] == f"api.{domain}", "the CN in metadata", auth)
        check(app.is_authenticated(), "hvac keeps the login token (use_token)")
        check(app.token == auth["client_token"], "the client's token is the login's")

        step("the app: secrets.database.generate_credentials with the login token")
        creds = app.secrets.database.generate_credentials(
            name=env["db_role"], mount_point=env["db_mount"]
        )
        username, lease_id = creds["data"]["username"], creds["lease_id"]
        check(username.startswith(env["user_prefix"]), "a user of the role", username)
        check(lease_id.startswith(f"{creds_path}/"), "a lease of the role", lease_id)

        step("the app: Forbidden everywhere else")
        for what, call in [
            ("list mounts", lambda: app.sys.list_mounted_secrets_engines()),
            (
                "read the cert entry",
                lambda: app.auth.cert.read_ca_certificate_role("services", mount_point=MOUNT),
            ),
            (
                "issue a certificate",
                lambda: app.secrets.pki.generate_certificate(
                    name=pki_role, common_name=f"x.{domain}", mount_point=pki_mount
                ),
            ),
        ]:
            expect(exceptions.Forbidden, what, call)

        step("a certificate whose name the entry does not allow is refused")
        other_cert, other_key = client_cert(f"db.{domain}")
        expect(
            exceptions.InvalidRequest,
            "another CN",
            hvac.Client(url=addr).auth.cert.login,
            name="services",
            cert_pem=other_cert,
            key_pem=other_key,
            mount_point=MOUNT,
        )

    step("delete_certificate_role")
    cert.delete_certificate_role("services", mount_point=MOUNT)
    expect(
        exceptions.InvalidPath,
        "the entry is gone",
        cert.read_ca_certificate_role,
        "services",
        mount_point=MOUNT,
    )

    step("sys.disable_auth_method revokes the login's token and its credentials")
    root.sys.disable_auth_method(MOUNT)
    check(not app.is_authenticated(), "the login token is revoked")
    expect(exceptions.VaultError, "the credentials' lease is gone", root.sys.read_lease, lease_id)


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    env = {
        "db_role": os.environ.get("BROKER_TEST_DB_ROLE"),
        "db_mount": os.environ.get("BROKER_TEST_DB_MOUNT") or "database",
        "user_prefix": os.environ.get("BROKER_TEST_DB_USER_PREFIX", ""),
        "pki_role": os.environ.get("BROKER_TEST_PKI_ROLE"),
        "pki_mount": os.environ.get("BROKER_TEST_PKI_MOUNT") or "pki",
        "domain": os.environ.get("BROKER_TEST_PKI_DOMAIN"),
    }
    if not addr or not token or not os.environ.get("VAULT_CACERT") or not all(
        env[k] for k in ("db_role", "pki_role", "domain")
    ):
        print(
            "test_cert.py: set VAULT_ADDR (https), VAULT_TOKEN (a root token), "
            "VAULT_CACERT (the listener's certificate), BROKER_TEST_DB_ROLE (a "
            "database role that issues credentials), BROKER_TEST_PKI_ROLE (a PKI "
            "role that issues client certificates) and BROKER_TEST_PKI_DOMAIN",
            file=sys.stderr,
        )
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token, env))


if __name__ == "__main__":
    sys.exit(main())
