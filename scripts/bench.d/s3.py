#!/usr/bin/env python3
"""A vault in a bucket: requests per command, and wall time against a local file.

    s3.py --tokvault BIN --node NODE --repo DIR --work DIR --out FILE \
        --commands FILE --endpoint URL --access-key KEY --secret-key SECRET \
        --bucket BUCKET [--runs 50] [--refresh-runs 10]

The same vault twice, made with the real CLI in --work (one identity):
vault.tokvault, a local file, and s3://BUCKET/bench/vault.tokvault on the S3
endpoint (Ceph radosgw on loopback; the bucket must exist and be empty).
Each holds two records: `bench`, the Google-sized record of scripts/bench's
make_vault (its access token valid until 2100: `token` never refreshes), and
`fresh`, a generic record whose refresh token the oidc-provider launcher
(tests/oidc-provider, rotation on) minted, one token per vault (a rotated
token presented twice would be a replay). Only the runs on the bucket get
the AWS_* variables.

Requests: `tokvault -vv token bench` once on the bucket, and
`tokvault -vv refresh --force --json fresh` once on the bucket; the lines
its log has for every S3 request it sends (`S3 request: GET|PUT|DELETE
KEY ...`) are counted and kept, and the launcher's token-endpoint counter
gives the provider's share of the refresh. The refresh must refresh and
rotate the record and save the vault.

Wall time: hyperfine -N of `token bench` (--runs, after 5 warm-up runs) and
of `refresh --force fresh` (--refresh-runs, after 1 warm-up run), first on
the local file, then on the bucket. Every refresh run must exit 0, and the
launcher must count exactly one successful refresh per run (each rotates the
token; the vault keeps the new one), no failed refresh and no replay.

Writes one JSON object to --out, appends the commands to --commands, and
prints a summary to stderr. Never prints a token.
"""

import argparse
import json
import os
import re
import secrets
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refresh import CLIENT_ID, CLIENT_SECRET, SCOPE, Launcher, clean_env  # noqa: E402

S3_KEY = "bench/vault.tokvault"
TOKEN_WARMUP = 5
REFRESH_WARMUP = 1
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(message):
    print(f"bench s3: {message}", file=sys.stderr, flush=True)


def urlsafe(length):
    return secrets.token_urlsafe(length)[:length]


class Side:
    """One vault, local or in the bucket, driven through ./tokvault in --work."""

    def __init__(self, name, work, vault, state, env):
        self.name = name
        self.work = work
        self.vault = vault
        self.env = env
        self.base = ["./tokvault", "--vault", vault, "-i", "identity.txt", "--state-dir", state]

    def run(self, args, stdin=None, verbose=False):
        command = self.argv(args, verbose)
        done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                              cwd=self.work, env=self.env, check=False)
        if done.returncode != 0:
            # stdout withheld: it may hold a secret; the log does not.
            raise SystemExit(f"bench s3: {self.name}: tokvault {args[0]} exited "
                             f"{done.returncode}: {done.stderr.strip()[-2000:]}")
        return done

    def argv(self, args, verbose=False):
        return self.base[:1] + (["-vv"] if verbose else []) + self.base[1:] + args

    def command(self, args, verbose=False):
        return " ".join(self.argv(args, verbose))


def s3_requests(stderr):
    """The `S3 request:` lines of a -vv log, from `S3 request:` on."""
    lines = []
    for line in ANSI.sub("", stderr).splitlines():
        at = line.find("S3 request:")
        if at >= 0:
            lines.append(line[at:].strip())
    return lines


def hyperfine(side, args, runs, warmup, out):
    """hyperfine -N of one command on one side: its result object."""
    command = side.command(args)
    subprocess.run(
        ["hyperfine", "-N", "--style", "basic", "--warmup", str(warmup), "--runs", str(runs),
         "--export-json", out, "-n", f"{side.name}", command],
        cwd=side.work, env=side.env, stdout=sys.stderr, check=True,
    )
    with open(out, encoding="utf-8") as f:
        result = json.load(f)["results"][0]
    keep = ("median", "mean", "stddev", "min", "max", "user", "system", "times")
    return {"command": command, **{k: result[k] for k in keep}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokvault", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--work", required=True, help="an empty scratch directory")
    parser.add_argument("--out", required=True)
    parser.add_argument("--commands", required=True, help="file the commands are appended to")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--refresh-runs", type=int, default=10)
    args = parser.parse_args()
    work = args.work

    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    os.symlink(args.tokvault, os.path.join(work, "tokvault"))
    env_local = clean_env(home)
    aws = {
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_ACCESS_KEY_ID": args.access_key,
        "AWS_SECRET_ACCESS_KEY": args.secret_key,
        "AWS_REGION": "us-east-1",
    }
    env_s3 = {**env_local, **aws}
    url = f"s3://{args.bucket}/{S3_KEY}"
    local = Side("local file", work, "vault.tokvault", "state", env_local)
    bucket = Side("bucket", work, url, "state-s3", env_s3)
    aws_text = (f"AWS_ENDPOINT_URL={args.endpoint} AWS_ACCESS_KEY_ID={args.access_key} "
                "AWS_SECRET_ACCESS_KEY=... AWS_REGION=us-east-1")
    commands = []

    launcher = Launcher(args.node, args.repo, os.path.join(work, "launcher.log"))
    try:
        recipient = local.run(["keygen", "-o", "identity.txt"]).stdout.strip()
        # The record of make_vault in scripts/bench, with a 245-character access token.
        bench_record = json.dumps({
            "tokvault_record": 1, "kind": "refresh_token", "provider": "google",
            "token_endpoint": "http://127.0.0.1:9/token",
            "client_id": "123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com",
            "client_secret": "GOCSPX-0123456789abcdefghijklmnop",
            "client_auth": "client_secret_post",
            "refresh_token": "1//0" + urlsafe(100),
            "scopes": ["https://www.googleapis.com/auth/gmail.send"],
            "account": "user@example.com",
            "access_token": "ya29." + urlsafe(240),
            "access_token_expires_at": 4102444800,
        })
        minted = launcher.mint(2)
        for side, refresh_token in ((local, minted[0]), (bucket, minted[1])):
            side.run(["init", "-r", recipient])
            side.run(["-q", "import", "--name", "bench", "-"], stdin=bench_record)
            fresh_record = json.dumps({
                "tokvault_record": 1, "kind": "refresh_token", "provider": "generic",
                "token_endpoint": launcher.token_endpoint,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "client_auth": "client_secret_post",
                "refresh_token": refresh_token, "scopes": [SCOPE],
            })
            side.run(["-q", "import", "--name", "fresh", "-"], stdin=fresh_record)
            side.run(["token", "bench"])
        vault_bytes = os.path.getsize(os.path.join(work, "vault.tokvault"))
        log(f"vaults made: vault.tokvault ({vault_bytes} bytes) and {url}")
        commands += [
            "tokvault keygen -o identity.txt",
            "tokvault --vault vault.tokvault init -r RECIPIENT; ... import --name bench - < "
            "(tokvault JSON record, as in row 1); ... import --name fresh - < (generic record, "
            "refresh token minted by tests/oidc-provider/launcher.mjs --rotation on)",
            f"{aws_text} tokvault --vault {url} ...   # the same init and imports "
            "(another minted refresh token), its own --state-dir",
        ]

        # Requests.
        done = bucket.run(["token", "bench"], verbose=True)
        token_lines = s3_requests(done.stderr)
        commands.append(f"{aws_text} {bucket.command(['token', 'bench'], verbose=True)}   "
                        "# counted: its 'S3 request:' log lines")
        before = launcher.stats()
        done = bucket.run(["refresh", "--force", "--json", "fresh"], verbose=True)
        after = launcher.stats()
        refresh_lines = s3_requests(done.stderr)
        outcome = json.loads(done.stdout)
        records = outcome["records"]
        if (len(records) != 1 or records[0]["outcome"] != "refreshed"
                or "rotated" not in records[0]["message"] or not outcome["saved"]):
            raise SystemExit(f"bench s3: the counted refresh did not refresh, rotate and save "
                             f"one record: {[(r.get('name'), r['outcome']) for r in records]}, "
                             f"saved={outcome['saved']}")
        provider_requests = after["token_requests"] - before["token_requests"]
        if after["refreshes_ok"] - before["refreshes_ok"] != 1:
            raise SystemExit(f"bench s3: the launcher counted {after} after {before}, "
                             "want one more successful refresh")
        commands.append(f"{aws_text} "
                        f"{bucket.command(['refresh', '--force', '--json', 'fresh'], verbose=True)}   "
                        "# counted: its 'S3 request:' log lines and the launcher's token requests")
        log(f"token: {len(token_lines)} S3 request(s): {'; '.join(token_lines)}")
        log(f"refresh: {len(refresh_lines)} S3 request(s) + {provider_requests} to the token "
            f"endpoint: {'; '.join(refresh_lines)}")

        # Wall time.
        timed = {}
        for what, cmd, runs, warmup in (
            ("token", ["token", "bench"], args.runs, TOKEN_WARMUP),
            ("refresh", ["refresh", "--force", "fresh"], args.refresh_runs, REFRESH_WARMUP),
        ):
            timed[what] = {}
            for key, side in (("local", local), ("s3", bucket)):
                log(f"hyperfine, {runs} runs: {what} on the {side.name}")
                timed[what][key] = hyperfine(side, cmd, runs, warmup,
                                             os.path.join(work, f"s3-{what}-{key}.json"))
            commands.append(
                f"hyperfine -N --warmup {warmup} --runs {runs} '{local.command(cmd)}'; then, with "
                f"the AWS_* variables, hyperfine -N --warmup {warmup} --runs {runs} "
                f"'{bucket.command(cmd)}'"
            )
        final = launcher.stats()
    finally:
        launcher.stop()

    timed_refreshes = 2 * (args.refresh_runs + REFRESH_WARMUP)
    if final["refresh_errors"] != 0 or final["replays_detected"] != 0 \
            or final["refreshes_ok"] - after["refreshes_ok"] != timed_refreshes:
        raise SystemExit(f"bench s3: launcher counters {final} (before the timed runs: {after}), "
                         f"want {timed_refreshes} more refreshes, no failure, no replay")

    result = {
        "endpoint": args.endpoint,
        "url": url,
        "vault_bytes": vault_bytes,
        "token_requests": token_lines,
        "refresh_s3_requests": refresh_lines,
        "refresh_provider_requests": provider_requests,
        "token": timed["token"],
        "refresh": timed["refresh"],
        "runs": args.runs,
        "refresh_runs": args.refresh_runs,
        "server": final,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
        f.write("\n")
    with open(args.commands, "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in commands))
    for what in ("token", "refresh"):
        t = timed[what]
        log(f"{what}: median local {t['local']['median'] * 1e3:.2f} ms, bucket "
            f"{t['s3']['median'] * 1e3:.2f} ms: {t['s3']['median'] / t['local']['median']:.2f}x; "
            f"spread (max/min) local {t['local']['max'] / t['local']['min']:.1f}, bucket "
            f"{t['s3']['max'] / t['s3']['min']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
