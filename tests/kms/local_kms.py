"""A local KMS API server for the awskms seal tests: moto's server mode,
started and driven by tests/support/kms.rs.

  local_kms.py serve --port PORT      moto on 127.0.0.1:PORT, checking
                                      every request's SigV4 signature
  local_kms.py bootstrap --endpoint URL
                                      creates an IAM user allowed
                                      everything, an access key for it and
                                      a symmetric KMS key; prints them as
                                      one JSON line
  local_kms.py call --endpoint URL OPERATION JSON
                                      one KMS call with boto3, signed with
                                      AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY;
                                      prints the answer as JSON

Signatures: moto checks SigV4 signatures (against the IAM access keys it
holds) once INITIAL_NO_AUTH_ACTION_COUNT requests have been served without.
`serve` sets that count to the three IAM calls `bootstrap` makes, so every
KMS request after them, the broker's included, is refused unless it is
signed correctly with the bootstrap user's key.

Key state: moto 5 answers Encrypt and Decrypt under a disabled key, or one
pending deletion, where AWS KMS refuses with DisabledException or
KMSInvalidStateException. `serve` adds that check to moto's KMS backend so
the tests see the answer AWS gives.
"""

import argparse
import base64
import json
import os
import sys

BOOTSTRAP_CALLS = 3


def serve(port):
    # moto reads this when its settings module is imported.
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(BOOTSTRAP_CALLS)
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend
    from moto.server import main

    class KeyStateError(JsonRESTError):
        code = 400

    def require_usable(backend, key_id):
        key = backend.keys[backend.any_id_to_key_id(key_id)]
        if key.key_state == "Disabled":
            raise KeyStateError("DisabledException", f"{key.arn} is disabled.")
        if key.key_state != "Enabled":
            raise KeyStateError(
                "KMSInvalidStateException", f"{key.arn} is {key.key_state}."
            )

    encrypt = KmsBackend.encrypt
    decrypt = KmsBackend.decrypt

    def checked_encrypt(self, key_id, plaintext, encryption_context):
        require_usable(self, key_id)
        return encrypt(self, key_id, plaintext, encryption_context)

    def checked_decrypt(self, ciphertext_blob, encryption_context, key_id=None):
        plaintext, arn = decrypt(self, ciphertext_blob, encryption_context, key_id)
        require_usable(self, arn)
        return plaintext, arn

    KmsBackend.encrypt = checked_encrypt
    KmsBackend.decrypt = checked_decrypt
    main(["--host", "127.0.0.1", "--port", str(port)])


def client(service, endpoint, key_id="bootstrap", secret="bootstrap"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", key_id),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", secret),
        config=Config(retries={"max_attempts": 1}),
    )


def bootstrap(endpoint):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    iam = client("iam", endpoint)
    # Exactly BOOTSTRAP_CALLS unsigned-checked calls.
    iam.create_user(UserName="broker")
    iam.put_user_policy(
        UserName="broker",
        PolicyName="everything",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    access = iam.create_access_key(UserName="broker")["AccessKey"]
    kms = client("kms", endpoint, access["AccessKeyId"], access["SecretAccessKey"])
    key = kms.create_key(Description="broker seal test key")["KeyMetadata"]
    print(
        json.dumps(
            {
                "access_key_id": access["AccessKeyId"],
                "secret_access_key": access["SecretAccessKey"],
                "key_id": key["KeyId"],
                "key_arn": key["Arn"],
            }
        )
    )


def plain(value):
    """Bytes (a CiphertextBlob) as base64, as the KMS JSON API sends them."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def call(endpoint, operation, params):
    import botocore.exceptions
    from botocore import xform_name

    service = "iam" if operation.startswith("iam:") else "kms"
    operation = operation.removeprefix("iam:")
    api = client(service, endpoint)
    try:
        answer = getattr(api, xform_name(operation))(**json.loads(params))
    except botocore.exceptions.ClientError as e:
        print(json.dumps({"error": e.response.get("Error", {})}))
        return
    answer.pop("ResponseMetadata", None)
    print(json.dumps(answer, default=plain))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("bootstrap")
    p.add_argument("--endpoint", required=True)
    p = sub.add_parser("call")
    p.add_argument("--endpoint", required=True)
    p.add_argument("operation")
    p.add_argument("params")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port)
    elif args.command == "bootstrap":
        bootstrap(args.endpoint)
    else:
        call(args.endpoint, args.operation, args.params)


if __name__ == "__main__":
    sys.exit(main())
