#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's
rabbitmq engine and a Redis config of its database engine.

The operator enables a `rabbitmq` engine (sys.enable_secrets_engine) and
drives it with secrets.rabbitmq: configure (connection_uri, username,
password), configure_lease, create_role with tags and vhosts,
read_role, generate_credentials (a lease whose user logs in to the
management API), delete_role; then revokes the lease (sys.revoke_lease)
and sees the login refused. Then secrets.database: configure with
plugin_name redis-database-plugin, create_role with Vault's
creation_statements, generate_credentials.

    VAULT_ADDR=... VAULT_TOKEN=... RABBITMQ_URL=http://127.0.0.1:15672 \\
    RABBITMQ_ADMIN=... RABBITMQ_PASSWORD=... REDIS_HOST=127.0.0.1 REDIS_PORT=6379 \\
        tests/hvac/.venv/bin/python tests/hvac/test_rabbitmq.py

Run by the end-to-end test rabbitmq::hvac_drives_the_rabbitmq_engine.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from base64 import b64encode

import hvac

from checks import check, finish, step

MOUNT = "hvac-rabbitmq"


def whoami(url, user, password):
    request = urllib.request.Request(f"{url}/api/whoami")
    token = b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def run(addr, root_token):
    env = os.environ
    url = env["RABBITMQ_URL"]
    client = hvac.Client(url=addr, token=root_token)

    step("enable the rabbitmq engine")
    client.sys.enable_secrets_engine("rabbitmq", path=MOUNT)
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    check(mounts[f"{MOUNT}/"]["type"] == "rabbitmq", "a rabbitmq mount", mounts.get(f"{MOUNT}/"))

    step("configure the connection and the lease")
    rmq = client.secrets.rabbitmq
    rmq.configure(
        connection_uri=url,
        username=env["RABBITMQ_ADMIN"],
        password=env["RABBITMQ_PASSWORD"],
        mount_point=MOUNT,
    )
    rmq.configure_lease(ttl=600, max_ttl=3600, mount_point=MOUNT)

    step("create and read a role")
    vhosts = json.dumps({"/": {"configure": ".*", "write": ".*", "read": ".*"}})
    rmq.create_role("app", tags="management", vhosts=vhosts, mount_point=MOUNT)
    role = rmq.read_role("app", mount_point=MOUNT)["data"]
    check(role["tags"] == "management", "the role's tags", role)
    check(json.loads(role["vhosts"])["/"]["read"] == ".*", "the role's vhosts", role)

    step("generate credentials and log in with them")
    creds = rmq.generate_credentials("app", mount_point=MOUNT)
    user, password = creds["data"]["username"], creds["data"]["password"]
    check(creds["lease_duration"] == 600, "the config/lease TTL", creds["lease_duration"])
    status, me = whoami(url, user, password)
    check(status == 200 and me["name"] == user, "a management-API login", (status, me))

    step("revoke the lease: the user is gone")
    client.sys.revoke_lease(creds["lease_id"])
    status, _ = whoami(url, user, password)
    check(status == 401, "the login refused after revocation", status)
    rmq.delete_role("app", mount_point=MOUNT)

    step("a Redis user through secrets.database")
    client.sys.enable_secrets_engine("database", path="hvac-redis")
    db = client.secrets.database
    db.configure(
        name="cache",
        plugin_name="redis-database-plugin",
        mount_point="hvac-redis",
        host=env["REDIS_HOST"],
        port=int(env["REDIS_PORT"]),
        username=env["REDIS_ADMIN"],
        password=env["REDIS_PASSWORD"],
        allowed_roles=["*"],
    )
    db.create_role(
        "reader",
        db_name="cache",
        creation_statements=['["~*", "+@read"]'],
        mount_point="hvac-redis",
    )
    creds = db.generate_credentials("reader", mount_point="hvac-redis")
    check(creds["data"]["username"].startswith("v_root_reader_"), "a Redis username", creds["data"])
    client.sys.revoke_lease(creds["lease_id"])


def main():
    run(os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"])


if __name__ == "__main__":
    sys.exit(finish(main))
