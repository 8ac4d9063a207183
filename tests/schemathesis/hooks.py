"""Schemathesis hooks for `.ci/schemathesis` (loaded through SCHEMATHESIS_HOOKS).

Three things, all driven by environment variables the script sets:

* `no_planted_secret`, a check: every response (body and headers) is searched
  for each secret the script planted (`BROKER_ST_SECRET_*`: the root token,
  the database config's admin password). One found is a failure.
* Reads and issuances aim at the planted resources half of the time
  (`flatmap_path_parameters`): random names only ever reach 404s, and a secret
  can only leak from a resource that exists.
* Writes and deletes never touch the planted resources (`before_call`): a
  generated name equal to one of them is renamed before the request goes out,
  so the run cannot disable the mounts or replace the config and roles the
  other operations need.
"""

import os
import re

import schemathesis
from hypothesis import strategies as st

SECRETS = {
    name: value.encode()
    for name, value in os.environ.items()
    if name.startswith("BROKER_ST_SECRET_") and len(value) >= 8
}


def _names(var):
    return tuple(n for n in os.environ.get(var, "").split(",") if n)


MOUNTS = _names("BROKER_ST_MOUNTS")
AUTH_MOUNTS = _names("BROKER_ST_AUTH_MOUNTS")
DB_CONFIGS = _names("BROKER_ST_DB_CONFIGS")
DB_ROLES = _names("BROKER_ST_DB_ROLES")
PKI_ROLES = _names("BROKER_ST_PKI_ROLES")
KV_SECRETS = _names("BROKER_ST_KV_SECRETS")

# Operations whose path parameter may name a planted resource, with the
# methods that only read it or issue from it (never replace or delete it).
AIMED = [
    (re.compile(r"^/sys/mounts/\{path\}/tune$"), "path", MOUNTS, {"GET", "POST"}),
    (re.compile(r"^/database/config/\{name\}$"), "name", DB_CONFIGS, {"GET"}),
    (re.compile(r"^/database/rotate-root/\{name\}$"), "name", DB_CONFIGS, {"POST"}),
    (re.compile(r"^/database/roles/\{name\}$"), "name", DB_ROLES, {"GET"}),
    (re.compile(r"^/database/creds/\{role\}$"), "role", DB_ROLES, {"GET"}),
    (re.compile(r"^/pki/roles/\{name\}$"), "name", PKI_ROLES, {"GET"}),
    (re.compile(r"^/pki/(issue|sign)/\{role\}$"), "role", PKI_ROLES, {"POST"}),
    (re.compile(r"^/secret/(data|metadata|subkeys)/\{path\}$"), "path", KV_SECRETS, {"GET", "PATCH"}),
]

# Operations that would replace or remove a planted resource.
PROTECTED = [
    (re.compile(r"^/sys/mounts/\{path\}$"), "path", MOUNTS),
    (re.compile(r"^/sys/auth/\{path\}$"), "path", AUTH_MOUNTS),
    (re.compile(r"^/database/config/\{name\}$"), "name", DB_CONFIGS),
    (re.compile(r"^/database/roles/\{name\}$"), "name", DB_ROLES),
    (re.compile(r"^/pki/roles/\{name\}$"), "name", PKI_ROLES),
    (re.compile(r"^/secret/(data|metadata|delete|destroy)/\{path\}$"), "path", KV_SECRETS),
]


@schemathesis.check
def no_planted_secret(ctx, response, case):
    """No response may carry the root token or the database admin password."""
    headers = "\n".join(
        f"{key}: {value}"
        for key, values in response.headers.items()
        for value in (values if isinstance(values, list) else [values])
    ).encode()
    for name, secret in SECRETS.items():
        for where, text in (("body", response.content or b""), ("headers", headers)):
            if secret in text:
                raise AssertionError(f"the response {where} contains the planted secret {name}")


@schemathesis.hook
def flatmap_path_parameters(ctx, path_parameters):
    op = ctx.operation
    if op is None or not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    for pattern, key, names, methods in AIMED:
        if names and op.method.upper() in methods and pattern.match(op.path) and key in path_parameters:
            return st.one_of(
                st.just(path_parameters),
                st.sampled_from(names).map(lambda n, k=key: {**path_parameters, k: n}),
            )
    return st.just(path_parameters)


def _is_planted(value, names):
    return isinstance(value, str) and value.strip("/").lower() in {n.lower() for n in names}


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.method.upper() not in ("POST", "PUT", "DELETE"):
        return
    params = case.path_parameters or {}
    for pattern, key, names in PROTECTED:
        if pattern.match(case.operation.path) and _is_planted(params.get(key), names):
            params[key] = params[key].strip("/") + "-spared"
            case.path_parameters = params
