#!/usr/bin/env python3
"""Print the JWT bearer assertion google-auth would send for a service account.

    sa_claims.py KEYFILE --token-uri URI --scope S [--scope S ...] [--subject SUB]

Loads KEYFILE with google-auth's own service_account.Credentials (with its
token_uri replaced by URI), asks it for the exact signed assertion it would
POST to the token endpoint (the private `_make_authorization_grant_assertion`),
checks the signature with google-auth's own verifier against the public half of
the key in KEYFILE, and prints {"header": {...}, "claims": {...}} as JSON.
Exits non-zero when the signature does not verify.

Note (google-auth 2.x): the assertion's `aud` is always Google's token endpoint
(https://oauth2.googleapis.com/token), whatever token_uri is; token_uri is only
where the assertion is sent.
"""

import argparse
import json
import sys

from cryptography.hazmat.primitives import serialization
from google.auth import jwt
from google.oauth2 import service_account


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keyfile")
    parser.add_argument("--token-uri", required=True)
    parser.add_argument("--scope", action="append", required=True)
    parser.add_argument("--subject")
    args = parser.parse_args()

    with open(args.keyfile, encoding="utf-8") as f:
        info = json.load(f)
    info["token_uri"] = args.token_uri
    creds = service_account.Credentials.from_service_account_info(
        info, scopes=args.scope, subject=args.subject
    )
    assertion = creds._make_authorization_grant_assertion()  # bytes
    token = assertion.decode("ascii") if isinstance(assertion, bytes) else assertion

    # The header and claims as google-auth wrote them, without verification...
    header, claims, _, _ = jwt._unverified_decode(token)
    # ...then a full check (RS256 signature, iat/exp) with google-auth's verifier
    # and the public key derived from the key file's private key.
    public_pem = (
        serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    try:
        verified = jwt.decode(token, certs=public_pem, audience=claims.get("aud"))
    except Exception as err:  # google.auth.exceptions.* on a bad signature
        print(f"sa_claims.py: signature verification failed: {err}", file=sys.stderr)
        return 1
    if verified != claims:
        print("sa_claims.py: verified claims differ from decoded claims", file=sys.stderr)
        return 1

    json.dump({"header": header, "claims": claims}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
