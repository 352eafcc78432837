#!/usr/bin/env python3
"""The serve benchmark's checks and figures, for scripts/bench.

    serve.py check-answer URL
    serve.py record --side floor|serve --round N --wrk FILE \
        [--cpu-ticks T --clock-ticks HZ] >> runs.jsonl
    serve.py collect --runs runs.jsonl --serve-hwm-kib K --floor-hwm-kib K \
        --seconds S --out serve.json

check-answer: one GET of the token endpoint, as a Google client library
sends it (Metadata-Flavor: Google; Host: the address in URL); fails unless
the answer is a 200 with a JSON body of exactly access_token, expires_in and
token_type "Bearer". Prints the answer's size, never the token.

record: parses one run of `wrk --latency` (requests/s, requests, the 50 %
and 99 % latencies) and fails if any response was not a 2xx or 3xx, any
socket error happened or no request was answered: every request of the run
must have passed serve's checks (peer uid, Host, Metadata-Flavor). Prints the
run as one JSON line.

collect: the medians per side over the rounds (round 0 is the warm-up and
is left out), with the peak RSS of both servers; the throughput ratio is the
median of the rounds' ratios (serve over the floor run just before it), so
that a change of the machine's load between rounds, which moves both sides
of a round alike, cancels out. Writes one JSON object.
"""

import argparse
import json
import re
import statistics
import sys
import urllib.error
import urllib.request

FLAVOR = {"Metadata-Flavor": "Google"}
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def fail(message):
    raise SystemExit(f"bench serve: error: {message}")


def check_answer(url):
    request = urllib.request.Request(url, headers=FLAVOR)
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no *_proxy
    try:
        with direct.open(request, timeout=10) as response:
            status = response.status
            content_type = response.headers.get("Content-Type", "")
            body = response.read()
    except urllib.error.HTTPError as e:
        fail(f"{url}: HTTP {e.code}: {e.read()[:200]!r}")
    except OSError as e:
        fail(f"{url}: {e}")
    if status != 200 or not content_type.startswith("application/json"):
        fail(f"{url}: HTTP {status}, Content-Type {content_type!r}")
    try:
        answer = json.loads(body)
    except ValueError:
        fail(f"{url}: the body is not JSON")
    if sorted(answer) != ["access_token", "expires_in", "token_type"] \
            or answer["token_type"] != "Bearer" \
            or not isinstance(answer["expires_in"], int) \
            or not isinstance(answer["access_token"], str):
        fail(f"{url}: not a token answer: keys {sorted(answer)}")
    print(f"bench serve: {url.split('/')[2]} answers 200, {len(body)} bytes of JSON, "
          f"a {len(answer['access_token'])}-character access token", file=sys.stderr)


def seconds(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        fail(f"cannot read the duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(text):
    """{"rps", "requests", "p50_s", "p99_s", ...} of one `wrk --latency` output."""
    def find(pattern, what):
        match = re.search(pattern, text, re.MULTILINE)
        if not match:
            fail(f"wrk's output has no {what}:\n{text}")
        return match

    run = {
        "rps": float(find(r"^Requests/sec:\s+([0-9.]+)", "Requests/sec").group(1)),
        "requests": int(find(r"^\s*([0-9]+) requests in ", "request count").group(1)),
    }
    for percent in ("50", "75", "90", "99"):
        run[f"p{percent}_s"] = seconds(
            find(rf"^\s+{percent}%\s+(\S+)$", f"{percent}% latency").group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", text)
    run["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(
        r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)", text)
    run["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                    (int(n) for n in errors.groups()))) if errors else {}
    return run


def record(args):
    with open(args.wrk, encoding="utf-8") as f:
        text = f.read()
    run = {"side": args.side, "round": args.round, **parse_wrk(text)}
    where = f"{args.side}, round {args.round} ({args.wrk})"
    if run["non_2xx"]:
        fail(f"{where}: {run['non_2xx']} of {run['requests']} responses were not 2xx or 3xx")
    if any(run["socket_errors"].values()):
        fail(f"{where}: socket errors {run['socket_errors']}")
    if run["requests"] == 0:
        fail(f"{where}: no request answered")
    if args.cpu_ticks is not None:
        run["cpu_s"] = args.cpu_ticks / args.clock_ticks
        run["cpu_per_request_s"] = run["cpu_s"] / run["requests"]
    print(f"bench serve: {where}: {run['rps']:,.0f} requests/s, p50 {run['p50_s'] * 1e3:.3f} ms, "
          f"p99 {run['p99_s'] * 1e3:.3f} ms, all {run['requests']:,} answered 2xx", file=sys.stderr)
    with open("/proc/loadavg", encoding="utf-8") as f:
        run["loadavg"] = " ".join(f.read().split()[:3])
    print(json.dumps(run))


def collect(args):
    with open(args.runs, encoding="utf-8") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    sides = {side: [r for r in runs if r["side"] == side and r["round"] > 0]
             for side in ("floor", "serve")}
    if not sides["floor"] or len(sides["floor"]) != len(sides["serve"]):
        fail(f"{args.runs}: expected as many runs of floor as of serve, at least one")
    median = statistics.median
    result = {"seconds": args.seconds, "rounds": len(sides["serve"]), "connections": 16,
              "threads": 2, "runs": runs}
    for side, side_runs in sides.items():
        for key in ("rps", "p50_s", "p99_s"):
            result[f"{side}_{key}"] = median(r[key] for r in side_runs)
        if all("cpu_per_request_s" in r for r in side_runs):
            result[f"{side}_cpu_per_request_s"] = median(r["cpu_per_request_s"] for r in side_runs)
    rounds = sorted({r["round"] for r in sides["serve"]})
    by_round = {(r["side"], r["round"]): r for side_runs in sides.values() for r in side_runs}
    try:
        result["rps_ratios"] = [by_round["serve", n]["rps"] / by_round["floor", n]["rps"]
                                for n in rounds]
    except KeyError as e:
        fail(f"{args.runs}: round {e.args[0][1]} lacks a run of {e.args[0][0]}")
    result["rps_ratio"] = median(result["rps_ratios"])
    result["rps_ratio_of_medians"] = result["serve_rps"] / result["floor_rps"]
    result["serve_hwm_kib"] = args.serve_hwm_kib
    result["floor_hwm_kib"] = args.floor_hwm_kib
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"bench serve: medians: floor {result['floor_rps']:,.0f} requests/s, serve "
          f"{result['serve_rps']:,.0f} requests/s ({result['rps_ratio']:.2f}×), serve p99 "
          f"{result['serve_p99_s'] * 1e3:.3f} ms, VmHWM {args.serve_hwm_kib / 1024:.1f} MiB",
          file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-answer")
    check.add_argument("url")
    rec = commands.add_parser("record")
    rec.add_argument("--side", choices=("floor", "serve"), required=True)
    rec.add_argument("--round", type=int, required=True)
    rec.add_argument("--wrk", required=True)
    rec.add_argument("--cpu-ticks", type=int)
    rec.add_argument("--clock-ticks", type=int, default=100)
    col = commands.add_parser("collect")
    col.add_argument("--runs", required=True)
    col.add_argument("--serve-hwm-kib", type=int, required=True)
    col.add_argument("--floor-hwm-kib", type=int, required=True)
    col.add_argument("--seconds", type=int, required=True)
    col.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "check-answer":
        check_answer(args.url)
    elif args.command == "record":
        record(args)
    else:
        collect(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
