#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against three broker nodes
on one PostgreSQL database: through the load balancer (VAULT_ADDR) it reads
sys/health, sys/leader and sys/ha-status; with one client per node
(NODE_ADDRS, comma-separated) a policy written through one node governs a
token made through another and used through the third.

    VAULT_ADDR=http://proxy:8200 NODE_ADDRS=http://n1:8200,... VAULT_TOKEN=... \\
        tests/hvac/.venv/bin/python tests/hvac/test_cluster.py

Run by the end-to-end test cluster::hvac_reads_the_cluster_and_each_node_sees_the_others_changes.
Exits non-zero at the first failure.
"""

import os
import sys
import time
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import CheckFailed, check, expect, finish, step


def until(what, fn, within=1.0):
    deadline = time.monotonic() + within
    while True:
        if fn():
            return
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {within}s")
        time.sleep(0.02)


def run(addr, nodes, token):
    lb = hvac.Client(url=addr, token=token)

    step("sys.read_health_status through the load balancer")
    seen = set()
    for _ in range(9):
        health = lb.sys.read_health_status(method="GET")
        check(health["initialized"] and not health["sealed"], "initialized and unsealed", health)
        check(health["ha_enabled"] is True, "ha_enabled", health)
        seen.add(health["node_id"])
    check(len(seen) == 3, "answers from all three nodes", seen)

    step("sys.read_leader_status")
    leader = lb.sys.read_leader_status()
    check(leader["ha_enabled"] is True, "ha_enabled", leader)
    check(leader["leader_address"] in nodes, "the periodic job's node is one of the nodes", leader)

    step("GET sys/ha-status through hvac's adapter")
    status = lb.adapter.get("/v1/sys/ha-status")
    listed = status["Nodes"]
    check(sorted(n["api_address"] for n in listed) == sorted(nodes), "every node listed", listed)
    check(sum(1 for n in listed if n["active_node"]) == 1, "one node runs the periodic job", listed)

    one, two, three = (hvac.Client(url=n, token=token) for n in nodes)
    step("a policy through node 1, a token through node 2, used through node 3")
    one.sys.enable_secrets_engine("kv", path="shared", options={"version": "2"})
    for name, node in (("2", two), ("3", three)):
        until(f"the mount on node {name}", lambda: "shared/" in node.sys.list_mounted_secrets_engines()["data"])
    two.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"}, mount_point="shared")
    one.sys.create_or_update_policy(name="reader", policy='path "shared/data/app" { capabilities = ["read"] }')
    made = two.auth.token.create(policies=["reader"], ttl="10m")
    reader = hvac.Client(url=nodes[2], token=made["auth"]["client_token"])
    read = reader.secrets.kv.v2.read_secret_version(path="app", mount_point="shared", raise_on_deleted_version=True)
    check(read["data"]["data"] == {"k": "v"}, "the secret", read)

    step("the policy narrowed through node 2: node 3 refuses within a second")
    two.sys.create_or_update_policy(name="reader", policy='path "shared/data/other" { capabilities = ["read"] }')

    def refused():
        try:
            reader.secrets.kv.v2.read_secret_version(path="app", mount_point="shared", raise_on_deleted_version=True)
            return False
        except exceptions.Forbidden:
            return True

    until("node 3 applies the narrowed policy", refused)

    step("the token revoked through node 1: node 3 refuses at once")
    one.auth.token.revoke(made["auth"]["client_token"])
    expect(
        exceptions.Forbidden,
        "a revoked token",
        hvac.Client(url=nodes[2], token=made["auth"]["client_token"]).auth.token.lookup_self,
    )


def main():
    addr, nodes, token = (os.environ.get(k) for k in ("VAULT_ADDR", "NODE_ADDRS", "VAULT_TOKEN"))
    if not (addr and nodes and token):
        print("test_cluster.py: set VAULT_ADDR (the load balancer), NODE_ADDRS and VAULT_TOKEN", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {addr} and {nodes}", flush=True)
    return finish(lambda: run(addr, nodes.split(","), token))


if __name__ == "__main__":
    sys.exit(main())
