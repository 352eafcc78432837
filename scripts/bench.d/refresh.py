#!/usr/bin/env python3
"""Refresh + persist of many expiring records: `tokvault refresh` against google-auth.

    refresh.py --tokvault BIN --node NODE --python VENV_PYTHON --repo DIR \
        --work DIR --out FILE [--records 1000] [--runs 5]

Both clients talk to one oidc-provider launcher (tests/oidc-provider, on
127.0.0.1, refresh-token rotation on, access tokens valid 60 s), with the
same client (post-client, client_secret_post) and scope (offline_access).

tokvault: a vault built with the real CLI (keygen, init, then one `import
--name rNNNN -` per minted refresh token, as a tokvault JSON record on
stdin). Every timed run is the whole process
`tokvault refresh --min-valid 10m --json`: since the access tokens live 60 s,
all records are due each time. That is: start, read and open the vault,
refresh every record (rotation on), apply the outcomes, seal, write the temp
file, fsync, rename, fsync the directory, update the refresh-health state.
Each run must refresh and rotate every record and save the vault.

google-auth: tests/python/bench_refresh.py in the test virtualenv, fresh
minted tokens each run, refreshed one after another in one process over one
requests session; it persists nothing. The ratio uses the time of its loop
only (its own perf_counter figure, without interpreter start and imports),
which is google-auth's best case; the whole-process time is reported too.

After one warm-up run of each, the runs alternate (google-auth, tokvault).
Medians are reported, with the CPU time (user + system) of each process.
The server must count zero replays and zero failed
refreshes. Writes one JSON object to --out and a summary to stderr. Never
prints a token: refresh tokens exist only in this process, the vault, the
launcher and a 0600 file in --work that google-auth reads.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

CLIENT_ID = "post-client"
CLIENT_SECRET = "post-client-secret-0123456789abcdef"
SCOPE = "offline_access"
MINT_LIMIT = 5000  # the launcher's largest count per /test/mint request


def log(message):
    print(f"bench refresh: {message}", file=sys.stderr, flush=True)


class Launcher:
    """oidc-provider on loopback; stops when we close its stdin or kill it."""

    def __init__(self, node, repo, log_path):
        self.log_file = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                node,
                os.path.join(repo, "tests/oidc-provider/launcher.mjs"),
                "--rotation",
                "on",
                "--access-token-ttl",
                "60",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            env=clean_env(os.path.dirname(log_path)),
        )
        timer = threading.Timer(60, self.process.kill)
        timer.start()
        try:
            line = self.process.stdout.readline()
        finally:
            timer.cancel()
        try:
            ready = json.loads(line)
        except ValueError:
            self.stop()
            raise SystemExit(f"bench refresh: the launcher did not start; see {log_path}") from None
        self.issuer = ready["issuer"]
        self.token_endpoint = ready["token_endpoint"]
        if not self.issuer.startswith("http://127.0.0.1:"):
            self.stop()
            raise SystemExit(f"bench refresh: unexpected issuer {self.issuer}")
        # Loopback only: no proxy, whatever the environment says.
        self.http = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path, body=None):
        request = urllib.request.Request(
            self.issuer + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"} if body is not None else {},
            method="GET" if body is None else "POST",
        )
        with self.http.open(request, timeout=120) as response:
            return json.load(response)

    def mint(self, count):
        tokens = []
        while len(tokens) < count:
            batch = min(MINT_LIMIT, count - len(tokens))
            minted = self._call(
                "/test/mint", {"client_id": CLIENT_ID, "scope": SCOPE, "count": batch}
            )
            tokens.extend(minted["refresh_tokens"])
        return tokens

    def stats(self):
        return self._call("/test/stats")

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def clean_env(home):
    """Only what the children need: no TOKVAULT_*, XDG_*, proxies or credentials."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C.UTF-8"}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        env[name] = os.path.join(home, name.lower())
    return env


class Vault:
    """A vault driven through the real `tokvault` binary."""

    def __init__(self, tokvault, work):
        self.work = work
        self.env = clean_env(os.path.join(work, "home"))
        self.path = os.path.join(work, "vault.tokvault")
        identity = os.path.join(work, "identity.txt")
        self.base = [tokvault, "--vault", self.path, "-i", identity,
                     "--state-dir", os.path.join(work, "state")]
        recipient = self.run(["keygen", "-o", identity]).stdout.strip()
        self.run(["init", "-r", recipient])

    def run(self, args, stdin=None):
        done = subprocess.run(
            self.base + args, input=stdin, capture_output=True, text=True, env=self.env,
            check=False,
        )
        if done.returncode != 0:
            # stdout withheld: it may hold a secret.
            raise SystemExit(
                f"bench refresh: tokvault {args[0]} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def import_minted(self, tokens, token_endpoint):
        for i, refresh_token in enumerate(tokens):
            record = {
                "tokvault_record": 1,
                "kind": "refresh_token",
                "provider": "generic",
                "token_endpoint": token_endpoint,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "client_auth": "client_secret_post",
                "refresh_token": refresh_token,
                "scopes": [SCOPE],
            }
            self.run(["-q", "import", "--name", f"r{i:04d}", "-"], stdin=json.dumps(record))


def children_cpu():
    """CPU seconds (user + system) of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tokvault_run(vault, count):
    """One whole-process `tokvault refresh`: (wall seconds, CPU seconds)."""
    args = ["refresh", "--min-valid", "10m", "--json"]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        vault.base + args, capture_output=True, text=True, env=vault.env, check=False
    )
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"bench refresh: tokvault refresh exited {done.returncode}: "
                         f"{done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    records = result["records"]
    refreshed = sum(1 for r in records if r["outcome"] == "refreshed")
    rotated = sum(1 for r in records if "rotated" in r["message"])
    if len(records) != count or refreshed != count or rotated != count or not result["saved"]:
        raise SystemExit(
            f"bench refresh: tokvault refreshed {refreshed}, rotated {rotated} of "
            f"{len(records)} records (want {count}), saved={result['saved']}"
        )
    return seconds, cpu


def google_auth_run(python, repo, work, launcher, count):
    """One google-auth process: (loop seconds, whole-process seconds, CPU seconds)."""
    tokens = launcher.mint(count)
    path = os.path.join(work, "google-auth-tokens.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"refresh_tokens": tokens}, f)
    command = [
        python, os.path.join(repo, "tests/python/bench_refresh.py"),
        "--token-uri", launcher.token_endpoint,
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
        "--tokens-file", path,
    ]
    cpu = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(os.path.join(work, "home")),
        check=False,
    )
    seconds = time.perf_counter() - started
    cpu = children_cpu() - cpu
    os.unlink(path)
    if done.returncode != 0:
        raise SystemExit(f"bench refresh: bench_refresh.py exited {done.returncode}: "
                         f"{done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    if result["failures"] != 0 or result["count"] != count:
        raise SystemExit(f"bench refresh: google-auth failed: {result}")
    return result["seconds"], seconds, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokvault", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--python", required=True, help="the test virtualenv's python")
    parser.add_argument("--repo", required=True)
    parser.add_argument("--work", required=True, help="an empty scratch directory")
    parser.add_argument("--out", required=True)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    count = args.records

    os.makedirs(os.path.join(args.work, "home"), exist_ok=True)
    launcher = Launcher(args.node, args.repo, os.path.join(args.work, "launcher.log"))
    try:
        started = time.perf_counter()
        vault = Vault(args.tokvault, args.work)
        vault.import_minted(launcher.mint(count), launcher.token_endpoint)
        vault_bytes = os.path.getsize(vault.path)
        log(f"vault with {count} records built with tokvault import in "
            f"{time.perf_counter() - started:.1f} s ({vault_bytes} bytes)")

        # Warm-up: the server's JIT, the page cache, the Python imports.
        tokvault_run(vault, count)
        google_auth_run(args.python, args.repo, args.work, launcher, min(count, 200))

        ours, ours_cpu, loop, process, theirs_cpu = [], [], [], [], []
        for i in range(args.runs):
            theirs_loop, theirs_process, cpu = google_auth_run(
                args.python, args.repo, args.work, launcher, count
            )
            loop.append(theirs_loop)
            process.append(theirs_process)
            theirs_cpu.append(cpu)
            seconds, cpu = tokvault_run(vault, count)
            ours.append(seconds)
            ours_cpu.append(cpu)
            log(f"run {i + 1}/{args.runs}: tokvault {ours[-1]:.3f} s, "
                f"google-auth {theirs_loop:.3f} s (process {theirs_process:.3f} s)")
        stats = launcher.stats()
    finally:
        launcher.stop()

    expected_ok = (args.runs + 1) * count + args.runs * count + min(count, 200)
    if stats["replays_detected"] != 0 or stats["refresh_errors"] != 0 \
            or stats["refreshes_ok"] != expected_ok:
        raise SystemExit(f"bench refresh: server counters {stats}, want "
                         f"{expected_ok} refreshes, no replay, no error")

    median = statistics.median
    result = {
        "records": count,
        "runs": args.runs,
        "vault_bytes": os.path.getsize(vault.path),
        "tokvault_command": "tokvault --vault V -i IDENTITY --state-dir S refresh --min-valid 10m --json",
        "tokvault_s": ours,
        "google_auth_loop_s": loop,
        "google_auth_process_s": process,
        "tokvault_median_s": median(ours),
        "google_auth_loop_median_s": median(loop),
        "google_auth_process_median_s": median(process),
        "tokvault_cpu_s": ours_cpu,
        "google_auth_cpu_s": theirs_cpu,
        "ratio": median(ours) / median(loop),
        "ratio_whole_process": median(ours) / median(process),
        "server": stats,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f)
        f.write("\n")
    log(f"median tokvault {result['tokvault_median_s']:.3f} s, google-auth loop "
        f"{result['google_auth_loop_median_s']:.3f} s: ratio {result['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
