"""An unmodified google-auth job: Application Default Credentials (which
find the metadata server through GCE_METADATA_HOST/GCE_METADATA_IP), then
a refresh. Prints one JSON line per token it got.

    gce_client.py              one token
    gce_client.py SECONDS      keep a valid token for SECONDS, as a
                               long-running job does (google-auth refreshes
                               by itself when the token is near expiry)
"""

import json
import sys
import time

import google.auth
from google.auth.transport.requests import Request

SCOPES = ["https://www.googleapis.com/auth/gmail.readonly"]


def report(credentials, project):
    print(
        json.dumps(
            {
                "class": f"{type(credentials).__module__}.{type(credentials).__name__}",
                "project": project,
                "email": credentials.service_account_email,
                "token": credentials.token,
                "expiry": credentials.expiry.isoformat(),
            }
        ),
        flush=True,
    )


def main():
    credentials, project = google.auth.default(scopes=SCOPES)
    request = Request()
    credentials.refresh(request)
    report(credentials, project)
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0
    deadline = time.monotonic() + seconds
    last = credentials.token
    while time.monotonic() < deadline:
        # What every authorized request does first.
        credentials.before_request(request, "GET", "https://gmail.googleapis.com/", {})
        if credentials.token != last:
            last = credentials.token
            report(credentials, project)
        time.sleep(0.2)


if __name__ == "__main__":
    main()
