#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's KV engine.

The operator enables a KV version 2 engine (sys.enable_secrets_engine with
options version 2, and the kv-v2 shorthand) and a version 1 engine, and
lists them (list_mounted_secrets_engines: type kv, options.version). Then
secrets.kv.v2: configure, read_configuration, create_or_update_secret with
and without cas (a stale cas refused with Vault's message),
read_secret_version (a version, the newest, a deleted one with and without
raise_on_deleted_version), patch, list_secrets, update_metadata with
custom_metadata, read_secret_metadata, delete_latest_version_of_secret,
undelete_secret_versions, delete_secret_versions, destroy_secret_versions,
delete_metadata_and_all_versions; a token whose policy reads
`<mount>/data/app/*` reads there and gets Forbidden elsewhere. Then
secrets.kv.v1: create_or_update_secret, read_secret, list_secrets,
delete_secret.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
        tests/hvac/.venv/bin/python tests/hvac/test_kv.py

Run by the end-to-end test kv::hvac_drives_kv_v1_and_v2, which starts a
broker. Exits non-zero at the first failure, saying which check failed;
prints one line per step on the way.
"""

import os
import sys
from importlib.metadata import version

import hvac
from hvac import exceptions

from checks import check, expect, finish, step

# Where this script enables its engines: not hvac's default (`secret`), so
# every call has to be given its mount_point.
KV2 = "hvac-kv2"
KV2_SHORT = "hvac-kv2-short"
KV1 = "hvac-kv1"
CAS_MISMATCH = "check-and-set parameter did not match the current version"


def run(addr, root_token):
    def client(token=None):
        return hvac.Client(url=addr, token=token)

    root = client(root_token)
    v2 = root.secrets.kv.v2
    v1 = root.secrets.kv.v1

    step("sys.enable_secrets_engine: kv with options version 2, kv-v2, kv version 1")
    root.sys.enable_secrets_engine("kv", path=KV2, options={"version": "2"}, description="versioned")
    root.sys.enable_secrets_engine("kv-v2", path=KV2_SHORT)
    root.sys.enable_secrets_engine("kv", path=KV1, options={"version": "1"})
    mounts = root.sys.list_mounted_secrets_engines()["data"]
    for path, want in [(KV2, "2"), (KV2_SHORT, "2"), (KV1, "1")]:
        mine = mounts.get(f"{path}/")
        check(mine is not None and mine["type"] == "kv", f"{path}/ listed as kv", mounts)
        check(mine["options"] == {"version": want}, f"{path}/ is version {want}", mine)
    check(mounts[f"{KV2}/"]["description"] == "versioned", "its description", mounts[f"{KV2}/"])

    step("secrets.kv.v2.configure, read_configuration")
    v2.configure(max_versions=5, mount_point=KV2)
    config = v2.read_configuration(mount_point=KV2)["data"]
    check(config["max_versions"] == 5, "max_versions", config)
    check(config["cas_required"] is False, "cas_required", config)
    check(config["delete_version_after"] == "0s", "delete_version_after", config)

    step("secrets.kv.v2.create_or_update_secret with cas")
    first = v2.create_or_update_secret("app/db", {"user": "app", "password": "one"}, cas=0, mount_point=KV2)["data"]
    check(first["version"] == 1 and first["destroyed"] is False, "version 1", first)
    check(first["deletion_time"] == "", "no deletion time", first)
    e = expect(
        exceptions.InvalidRequest,
        "a stale cas",
        v2.create_or_update_secret,
        "app/db",
        {"password": "lost"},
        cas=0,
        mount_point=KV2,
    )
    check(e.errors == [CAS_MISMATCH], "Vault's message", e.errors)
    second = v2.create_or_update_secret("app/db", {"user": "app", "password": "two"}, cas=1, mount_point=KV2)["data"]
    check(second["version"] == 2, "version 2", second)

    step("secrets.kv.v2.read_secret_version: the newest, and version 1")
    newest = v2.read_secret_version("app/db", mount_point=KV2, raise_on_deleted_version=True)["data"]
    check(newest["data"] == {"user": "app", "password": "two"}, "the newest data", newest)
    check(newest["metadata"]["version"] == 2, "its version", newest)
    old = v2.read_secret_version("app/db", version=1, mount_point=KV2, raise_on_deleted_version=True)["data"]
    check(old["data"]["password"] == "one", "version 1's data", old)
    expect(
        exceptions.InvalidPath,
        "a secret that is not there",
        v2.read_secret_version,
        "app/none",
        mount_point=KV2,
        raise_on_deleted_version=True,
    )

    step("secrets.kv.v2.patch (read, then write with cas)")
    patched = v2.patch("app/db", {"password": "three"}, mount_point=KV2)["data"]
    check(patched["version"] == 3, "version 3", patched)
    newest = v2.read_secret("app/db", mount_point=KV2, raise_on_deleted_version=True)["data"]["data"]
    check(newest == {"user": "app", "password": "three"}, "merged", newest)

    step("secrets.kv.v2.list_secrets")
    v2.create_or_update_secret("app/api", {"token": "t"}, mount_point=KV2)
    v2.create_or_update_secret("team/x/y", {"k": "v"}, mount_point=KV2)
    keys = v2.list_secrets("app", mount_point=KV2)["data"]["keys"]
    check(keys == ["api", "db"], "the app folder", keys)
    keys = v2.list_secrets("", mount_point=KV2)["data"]["keys"]
    check(keys == ["app/", "team/"], "the top", keys)
    expect(exceptions.InvalidPath, "an empty folder", v2.list_secrets, "nothing", mount_point=KV2)

    step("secrets.kv.v2.update_metadata, read_secret_metadata")
    v2.update_metadata("app/db", max_versions=3, custom_metadata={"owner": "payments"}, mount_point=KV2)
    meta = v2.read_secret_metadata("app/db", mount_point=KV2)["data"]
    check(meta["current_version"] == 3, "current_version", meta)
    check(meta["max_versions"] == 3, "max_versions", meta)
    check(meta["custom_metadata"] == {"owner": "payments"}, "custom_metadata", meta)
    check(sorted(meta["versions"]) == ["1", "2", "3"], "three versions", meta)
    check(meta["delete_version_after"] == "0s", "delete_version_after", meta)
    v2.create_or_update_secret("app/db", {"password": "four"}, mount_point=KV2)
    meta = v2.read_secret_metadata("app/db", mount_point=KV2)["data"]
    check(sorted(meta["versions"]) == ["2", "3", "4"], "the oldest went past max_versions", meta)

    step("secrets.kv.v2.delete_latest_version_of_secret, undelete_secret_versions")
    v2.delete_latest_version_of_secret("app/db", mount_point=KV2)
    expect(
        exceptions.InvalidPath,
        "a deleted version, raising",
        v2.read_secret_version,
        "app/db",
        mount_point=KV2,
        raise_on_deleted_version=True,
    )
    deleted = v2.read_secret_version("app/db", mount_point=KV2, raise_on_deleted_version=False)["data"]
    check(deleted["data"] is None, "no data", deleted)
    check(deleted["metadata"]["deletion_time"] != "", "its deletion time", deleted)
    check(deleted["metadata"]["version"] == 4, "its version", deleted)
    v2.undelete_secret_versions("app/db", [4], mount_point=KV2)
    back = v2.read_secret("app/db", mount_point=KV2, raise_on_deleted_version=True)["data"]
    check(back["data"] == {"password": "four"}, "undeleted", back)

    step("secrets.kv.v2.delete_secret_versions, destroy_secret_versions")
    v2.delete_secret_versions("app/db", [2], mount_point=KV2)
    v2.destroy_secret_versions("app/db", [3], mount_point=KV2)
    meta = v2.read_secret_metadata("app/db", mount_point=KV2)["data"]
    check(meta["versions"]["2"]["deletion_time"] != "", "version 2 deleted", meta)
    check(meta["versions"]["3"]["destroyed"] is True, "version 3 destroyed", meta)
    # Undelete cannot bring a destroyed version back. It has no deletion
    # time, so hvac raises for it even when asked not to for deleted ones.
    v2.undelete_secret_versions("app/db", [3], mount_point=KV2)
    expect(
        exceptions.InvalidPath,
        "a destroyed version stays unreadable",
        v2.read_secret_version,
        "app/db",
        version=3,
        mount_point=KV2,
        raise_on_deleted_version=False,
    )

    step("a token whose policy reads app/* reads there only")
    root.sys.create_or_update_policy(
        name="hvac-kv-app", policy=f'path "{KV2}/data/app/*" {{ capabilities = ["read"] }}'
    )
    token = root.auth.token.create(policies=["hvac-kv-app"], ttl="10m")["auth"]["client_token"]
    app = client(token).secrets.kv.v2
    got = app.read_secret("app/api", mount_point=KV2, raise_on_deleted_version=True)["data"]["data"]
    check(got == {"token": "t"}, "reads app/api", got)
    for what, fn, args, kwargs in [
        ("read team/x/y", app.read_secret, ("team/x/y",), {"mount_point": KV2, "raise_on_deleted_version": True}),
        ("write app/api", app.create_or_update_secret, ("app/api", {"token": "x"}), {"mount_point": KV2}),
        ("read metadata", app.read_secret_metadata, ("app/api",), {"mount_point": KV2}),
        ("list app", app.list_secrets, ("app",), {"mount_point": KV2}),
        ("destroy", app.destroy_secret_versions, ("app/api", [1]), {"mount_point": KV2}),
    ]:
        expect(exceptions.Forbidden, what, fn, *args, **kwargs)

    step("secrets.kv.v2.delete_metadata_and_all_versions")
    v2.delete_metadata_and_all_versions("app/db", mount_point=KV2)
    expect(exceptions.InvalidPath, "its metadata is gone", v2.read_secret_metadata, "app/db", mount_point=KV2)
    expect(
        exceptions.InvalidPath,
        "its versions are gone",
        v2.read_secret_version,
        "app/db",
        version=4,
        mount_point=KV2,
        raise_on_deleted_version=False,
    )

    step("the kv-v2 shorthand mount works the same")
    v2.create_or_update_secret("x", {"k": "v"}, mount_point=KV2_SHORT)
    got = v2.read_secret("x", mount_point=KV2_SHORT, raise_on_deleted_version=True)["data"]["data"]
    check(got == {"k": "v"}, "read back", got)

    step("secrets.kv.v1.create_or_update_secret, read_secret")
    v1.create_or_update_secret("app/db", {"password": "s3cr3t", "ttl": "30m"}, mount_point=KV1)
    read = v1.read_secret("app/db", mount_point=KV1)
    check(read["data"] == {"password": "s3cr3t", "ttl": "30m"}, "the secret", read)
    check(read["lease_duration"] == 1800 and read["lease_id"] == "", "its ttl, as a hint", read)
    # Written again: hvac reads first and chooses PUT.
    v1.create_or_update_secret("app/db", {"password": "again"}, mount_point=KV1)
    read = v1.read_secret("app/db", mount_point=KV1)["data"]
    check(read == {"password": "again"}, "replaced whole", read)

    step("secrets.kv.v1.list_secrets, delete_secret")
    v1.create_or_update_secret("app/api", {"token": "t"}, mount_point=KV1)
    keys = v1.list_secrets("app", mount_point=KV1)["data"]["keys"]
    check(keys == ["api", "db"], "the app folder", keys)
    keys = v1.list_secrets("", mount_point=KV1)["data"]["keys"]
    check(keys == ["app/"], "the top", keys)
    v1.delete_secret("app/db", mount_point=KV1)
    expect(exceptions.InvalidPath, "a deleted secret", v1.read_secret, "app/db", mount_point=KV1)


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    if not addr or not token:
        print("test_kv.py: set VAULT_ADDR and VAULT_TOKEN (a root token)", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token))


if __name__ == "__main__":
    sys.exit(main())
