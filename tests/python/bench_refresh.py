#!/usr/bin/env python3
"""Refresh many tokens with google-auth, the way an application would.

    bench_refresh.py --token-uri URI --client-id ID --client-secret SECRET \
        --tokens-file FILE

FILE is JSON {"refresh_tokens": [...]}. In this one process, for each token in
turn, builds google.oauth2.credentials.Credentials and calls .refresh() through
one google.auth.transport.requests.Request wrapping one shared requests.Session
(connection reuse, as in a long-running application). Prints
{"count": n, "failures": f, "seconds": wall time of the loop} as JSON.

google-auth authenticates the client with client_secret_post (id and secret in
the form body), so against the test oidc-provider use `post-client`.
"""

import argparse
import json
import sys
import time

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-uri", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--tokens-file", required=True)
    args = parser.parse_args()

    with open(args.tokens_file, encoding="utf-8") as f:
        refresh_tokens = json.load(f)["refresh_tokens"]

    session = requests.Session()
    request = google.auth.transport.requests.Request(session=session)
    failures = 0
    start = time.perf_counter()
    for rt in refresh_tokens:
        creds = google.oauth2.credentials.Credentials(
            token=None,
            refresh_token=rt,
            token_uri=args.token_uri,
            client_id=args.client_id,
            client_secret=args.client_secret,
        )
        try:
            creds.refresh(request)
            if not creds.token:
                raise google.auth.exceptions.RefreshError("no access token")
        except google.auth.exceptions.GoogleAuthError as err:
            failures += 1
            if failures <= 3:
                print(f"bench_refresh.py: refresh failed: {err}", file=sys.stderr)
    seconds = time.perf_counter() - start
    session.close()

    json.dump({"count": len(refresh_tokens), "failures": failures, "seconds": seconds}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
