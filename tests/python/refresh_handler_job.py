"""The README's recipe for a long-running google-auth job that does not
start under tokvault: google-auth asks `tokvault token --json` for each
new access token through a refresh handler. Runs for SECONDS, making an
authorized request's preparations every 0.2 s, and prints one JSON line
per token it got.

    refresh_handler_job.py SECONDS RECORD TOKVAULT [TOKVAULT ARGS...]

google-auth treats a token with less than 225 s left as expired and
refuses one from the handler, so `--min-valid` must be above that: 5m in
the recipe, MIN_VALID in the environment for a test with short tokens.
"""

import datetime
import json
import os
import subprocess
import sys
import time

from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials

SECONDS, RECORD, TOKVAULT = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
MIN_VALID = os.environ.get("MIN_VALID", "5m")


# --- the recipe (README, "Use it from your existing code") ---------------
def tokvault_token(request, scopes):
    answer = subprocess.run(
        [*TOKVAULT, "token", RECORD, "--json", "--min-valid", MIN_VALID],
        check=True, capture_output=True, text=True,
    ).stdout
    token = json.loads(answer)
    expiry = datetime.datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
    # google-auth compares naive UTC datetimes.
    return token["access_token"], expiry.replace(tzinfo=None)


credentials = Credentials(token=None, refresh_handler=tokvault_token)
# -------------------------------------------------------------------------

request = Request()
last = None
deadline = time.monotonic() + SECONDS
while time.monotonic() < deadline:
    credentials.before_request(request, "GET", "https://gmail.googleapis.com/", {})
    if credentials.token != last:
        last = credentials.token
        print(json.dumps({"token": last, "expiry": credentials.expiry.isoformat()}), flush=True)
    time.sleep(0.2)
