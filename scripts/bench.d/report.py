#!/usr/bin/env python3
"""Turns the raw results of scripts/bench into one table of ratios.

    report.py --results DIR --target-dir DIR --since EPOCH --started ISO-DATE \
        --loadavg "L1 L5 L15" [--mode all|token|format|refresh|serve|s3] \
        [--doc docs/BENCHMARKS.md]

Reads what scripts/bench left in DIR (token.json from hyperfine, rss-*.txt
from /usr/bin/time, refresh.json from refresh.py, serve.json from serve.py,
s3.json from s3.py, commands.txt) and
criterion's medians (TARGET/criterion/<id>/new/estimates.json, only those
written after EPOCH). Prints the table on stdout. With --doc, which needs
every row, also writes the table, the machine, the details and the commands
into that file between its two marker lines (the rest of the file, the
hand-written notes, is kept; a missing file is created).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

BEGIN = "<!-- scripts/bench: generated from here to the end marker; edit outside -->"
END = "<!-- scripts/bench: end of generated part -->"

TOKEN_GOAL = 1.0
UNLOCK_GOAL = 1.05
REFRESH_GOAL = 0.5
OPEN_SEAL_BUDGET_S = 0.020
LINEAR_GOAL = 1.25
RSS_BUDGET_KIB = 10 * 1024
SERVE_RPS_GOAL = 0.70
SERVE_P99_BUDGET_S = 0.002
SERVE_RSS_BUDGET_KIB = 15 * 1024
S3_TOKEN_REQUESTS_GOAL = 1
S3_REFRESH_REQUESTS_GOAL = 5


def fail(message):
    raise SystemExit(f"bench report: error: {message}")


# ---------------------------------------------------------------- formatting
def fmt_time(seconds):
    """Three significant digits: 1.23 s, 45.6 ms, 789 µs."""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            break
    else:
        unit, scale = "ns", 1e-9
    value = seconds / scale
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f} {unit}"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def fmt_ratio(ratio):
    return f"{ratio:.2f}×"


def met(ratio, goal, at_least=False):
    """Whether the ratio meets its goal: at most the goal, or at least it."""
    return ratio >= goal if at_least else ratio <= goal


def verdict(ratio, goal, at_least=False):
    return "PASS" if met(ratio, goal, at_least) else "**MISS**"


# ---------------------------------------------------------------- inputs
def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def criterion_medians(target_dir, since):
    """{full_id: median seconds} of every benchmark criterion wrote since EPOCH."""
    root = os.path.join(target_dir, "criterion")
    medians = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        estimates = os.path.join(dirpath, "estimates.json")
        if os.path.getmtime(estimates) < since:
            continue
        full_id = load_json(os.path.join(dirpath, "benchmark.json"))["full_id"]
        medians[full_id] = load_json(estimates)["median"]["point_estimate"] / 1e9
    return medians


def read_kib(path):
    with open(path, encoding="utf-8") as f:
        values = [line.strip() for line in f if line.strip()]
    if not values or not all(v.isdigit() for v in values):
        fail(f"{path}: expected one KiB figure per line, got {values[:3]}")
    return [int(v) for v in values]


def command_output(*command, any_status=False):
    """The first line the command prints; "unknown" if it fails (unless
    any_status: `wrk --version` prints its version and exits 1)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if (done.returncode == 0 or any_status) and text else "unknown"


def machine(args):
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg", encoding="utf-8") as f:
        load_now = " ".join(f.read().split()[:3])
    python = os.environ.get("TOKVAULT_TEST_PYTHON")
    google_auth = (
        command_output(python, "-c", "import google.auth; print(google.auth.__version__)")
        if python else "unknown"
    )
    return [
        ("Date (UTC)", args.started),
        ("CPU", model),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Load average at start (1, 5, 15 min)", args.loadavg),
        ("Load average at the end", load_now),
        ("rustc", command_output("rustc", "--version")),
        ("hyperfine", command_output("hyperfine", "--version")),
        ("age", command_output("age", "--version")),
        ("node", command_output("node", "--version")),
        ("google-auth", google_auth),
        ("wrk", command_output("wrk", "--version", any_status=True).split(" Copyright")[0]),
        ("radosgw", " ".join(command_output("radosgw", "--version").split()[:3])),
    ]


# ---------------------------------------------------------------- rows
class Report:
    def __init__(self):
        self.rows = []      # (number, measure, ours, baseline, ratio, goal text, verdict)
        self.details = []   # markdown lines
        self.misses = []

    def row(self, number, measure, ours, baseline, ratio, goal, goal_text=None, at_least=False):
        """A row; the ratio must be at most the goal, or at least it with at_least."""
        default_text = f"≥ {goal:.2f}×" if at_least else f"≤ {goal:.2f}×"
        self.rows.append((number, measure, ours, baseline, fmt_ratio(ratio),
                          goal_text or default_text, verdict(ratio, goal, at_least)))
        if not met(ratio, goal, at_least):
            self.misses.append(measure)

    def info_row(self, number, measure, ours, baseline, ratio):
        """A row without a goal: a figure to know, neither passed nor missed."""
        self.rows.append((number, measure, ours, baseline, fmt_ratio(ratio), "—", "—"))

    def table(self):
        lines = [
            "| # | Measure | tokvault | Baseline | Ratio | Goal | Result |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return lines


def token_rows(report, results):
    hyperfine = load_json(os.path.join(results, "token.json"))["results"]
    by_name = {r["command"]: r for r in hyperfine}
    ours, theirs = by_name["tokvault token"], by_name["age -d"]
    with open(os.path.join(results, "vault-bytes"), encoding="utf-8") as f:
        size = int(f.read())
    runs = len(ours["times"])
    report.row(
        "1",
        f"`tokvault token` vs `age -d` of a file of the vault's size ({size:,} B), "
        f"whole process, hyperfine median of {runs}",
        fmt_time(ours["median"]), f"`age -d` {fmt_time(theirs['median'])}",
        ours["median"] / theirs["median"], TOKEN_GOAL,
    )
    report.details += [
        "### 1. `tokvault token` vs `age -d`",
        "",
        "| Command | Median | Mean ± σ | Min | User | System |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("tokvault token", ours), ("age -d", theirs)):
        report.details.append(
            f"| `{name}` | {fmt_time(r['median'])} | "
            f"{fmt_time(r['mean'])} ± {fmt_time(r['stddev'])} | {fmt_time(r['min'])} | "
            f"{fmt_time(r['user'])} | {fmt_time(r['system'])} |"
        )
    report.details.append("")
    return size


def rss_rows(report, results):
    ours = read_kib(os.path.join(results, "rss-tokvault.txt"))
    theirs = read_kib(os.path.join(results, "rss-age.txt"))
    report.row(
        "5",
        f"Peak RSS of `tokvault token` vs a 10 MiB budget, max of {len(ours)} runs "
        "(`/usr/bin/time -f %M`)",
        fmt_mib(max(ours)), fmt_mib(RSS_BUDGET_KIB), max(ours) / RSS_BUDGET_KIB, 1.0,
        "≤ 10 MiB",
    )
    report.details += [
        "### 5. Peak RSS",
        "",
        f"`tokvault token`: max {fmt_mib(max(ours))}, median {fmt_mib(statistics.median(ours))} "
        f"over {len(ours)} runs; `age -d` of the same-size file: max {fmt_mib(max(theirs))}, "
        f"median {fmt_mib(statistics.median(theirs))}.",
        "",
    ]


def format_rows(report, medians):
    def need(full_id):
        if full_id not in medians:
            fail(f"no fresh criterion estimate for {full_id!r} (did cargo bench run?)")
        return medians[full_id]

    for params, label in (("default", "default parameters (256 MiB, 3 passes, 4 lanes)"),
                          ("floor", "floor parameters (64 MiB, 3 passes, 1 lane)")):
        unlock = need(f"passphrase unlock/unlock/{params}")
        argon = need(f"passphrase unlock/argon2id/{params}")
        report.row(
            "2",
            f"Passphrase unlock (open of a vault with one passphrase slot) vs Argon2id alone, "
            f"{label}, criterion median of thread CPU time",
            fmt_time(unlock), f"Argon2id {fmt_time(argon)}", unlock / argon, UNLOCK_GOAL,
        )

    sizes = (1, 100, 10_000)
    full = {n: need(f"open+seal/{n}") for n in sizes}
    per = {n: full[n] / n for n in sizes}
    report.row(
        "4",
        "Open + seal of 10,000 records (X25519 slot) vs a 20 ms budget, criterion median",
        fmt_time(full[10_000]), fmt_time(OPEN_SEAL_BUDGET_S),
        full[10_000] / OPEN_SEAL_BUDGET_S, 1.0, "≤ 20 ms",
    )
    report.row(
        "4",
        "Open + seal, linearity: time per record at 10,000 records vs at 100",
        f"{fmt_time(per[10_000])}/record", f"{fmt_time(per[100])}/record",
        per[10_000] / per[100], LINEAR_GOAL,
    )
    report.details += [
        "### 4. Open + seal",
        "",
        "Criterion medians; the AEAD floor is XChaCha20-Poly1305 encrypt + decrypt of a "
        "payload of the same size, nothing else.",
        "",
        "| Records | Open + seal | Per record | Open only | Seal only | AEAD floor | Open + seal / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sizes:
        floor = need(f"open+seal/aead-floor/{n}")
        report.details.append(
            f"| {n:,} | {fmt_time(full[n])} | {fmt_time(per[n])} | "
            f"{fmt_time(need(f'open+seal/open-only/{n}'))} | "
            f"{fmt_time(need(f'open+seal/seal-only/{n}'))} | {fmt_time(floor)} | "
            f"{full[n] / floor:.1f}× |"
        )
    report.details += [
        "",
        "### 2. Passphrase unlock",
        "",
        "Criterion medians of the benchmark thread's CPU time.",
        "",
        "| Parameters | Unlock | Argon2id alone | Difference |",
        "|---|---:|---:|---:|",
    ]
    for params in ("default", "floor"):
        unlock = need(f"passphrase unlock/unlock/{params}")
        argon = need(f"passphrase unlock/argon2id/{params}")
        report.details.append(
            f"| {params} | {fmt_time(unlock)} | {fmt_time(argon)} | "
            f"{(unlock - argon) * 1e3:+.1f} ms |"
        )
    report.details.append("")


def refresh_rows(report, results):
    r = load_json(os.path.join(results, "refresh.json"))
    report.row(
        "3",
        f"Refresh + persist of {r['records']:,} expiring records, rotation on: "
        "`tokvault refresh` (whole process) vs google-auth refreshing one after another in one "
        f"Python process (its loop only), same oidc-provider, median of {r['runs']}",
        fmt_time(r["tokvault_median_s"]), f"google-auth {fmt_time(r['google_auth_loop_median_s'])}",
        r["ratio"], REFRESH_GOAL,
    )
    runs = lambda values: ", ".join(f"{v:.3f}" for v in values)  # noqa: E731
    report.details += [
        "### 3. Refresh + persist",
        "",
        "| Side | Runs (s) | Median |",
        "|---|---|---:|",
        f"| `tokvault refresh --min-valid 10m --json`, whole process | {runs(r['tokvault_s'])} | "
        f"{fmt_time(r['tokvault_median_s'])} |",
        f"| google-auth, loop only | {runs(r['google_auth_loop_s'])} | "
        f"{fmt_time(r['google_auth_loop_median_s'])} |",
        f"| google-auth, whole process | {runs(r['google_auth_process_s'])} | "
        f"{fmt_time(r['google_auth_process_median_s'])} |",
        "",
        f"CPU time (user + system) of the processes, median: tokvault "
        f"{fmt_time(statistics.median(r['tokvault_cpu_s']))}, google-auth "
        f"{fmt_time(statistics.median(r['google_auth_cpu_s']))} (the rest of the wall time is "
        "spent waiting for the server). "
        f"Whole process against whole process: {fmt_ratio(r['ratio_whole_process'])}. "
        f"Vault after the runs: {r['vault_bytes']:,} bytes. "
        f"Server counters: {r['server']['refreshes_ok']:,} refreshes, "
        f"{r['server']['refresh_errors']} failed, {r['server']['replays_detected']} replays.",
        "",
    ]


def serve_rows(report, results):
    r = load_json(os.path.join(results, "serve.json"))
    load = f"wrk -t{r['threads']} -c{r['connections']}, keep-alive, median of {r['rounds']} runs of {r['seconds']} s"
    report.row(
        "6",
        "`tokvault serve --gce`: requests/s of the token endpoint vs a minimal hyper server "
        f"answering a fixed JSON of the same shape on the same runtime (the floor), {load}; "
        "ratio: median of the rounds' ratios (floor, then serve, back to back)",
        f"{r['serve_rps']:,.0f} req/s", f"floor {r['floor_rps']:,.0f} req/s",
        r["rps_ratio"], SERVE_RPS_GOAL, at_least=True,
    )
    report.row(
        "6",
        f"`tokvault serve --gce`: p99 latency of the token endpoint vs a 2 ms budget, {load}",
        fmt_time(r["serve_p99_s"]),
        f"{fmt_time(SERVE_P99_BUDGET_S)} (floor's p99: {fmt_time(r['floor_p99_s'])})",
        r["serve_p99_s"] / SERVE_P99_BUDGET_S, 1.0, "≤ 2 ms",
    )
    report.row(
        "7",
        "Peak RSS of `tokvault serve --gce` after the load of row 6 vs a 15 MiB budget "
        "(VmHWM)",
        fmt_mib(r["serve_hwm_kib"]), fmt_mib(SERVE_RSS_BUDGET_KIB),
        r["serve_hwm_kib"] / SERVE_RSS_BUDGET_KIB, 1.0, "≤ 15 MiB",
    )
    ms = lambda seconds: f"{seconds * 1e3:.3f}"  # noqa: E731
    report.details += [
        "### 6. Local metadata server",
        "",
        f"`wrk -t{r['threads']} -c{r['connections']} -d{r['seconds']}s --latency "
        "-H 'Metadata-Flavor: Google'` against the token endpoint of each server, one after the "
        "other, round by round, after a 2 s warm-up of each; every response a 200. CPU is the "
        "server process's user + system time over the run, per request; the load average "
        "(1 min) is read just after each run, wrk's own load included.",
        "",
        "| Round | Server | Requests/s | Serve / floor | p50 (ms) | p99 (ms) | CPU per request "
        "| Load after |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    measured = [run for run in r["runs"] if run["round"] > 0]
    ratios = dict(zip(sorted({run["round"] for run in measured}), r["rps_ratios"]))
    for run in measured:
        cpu = run.get("cpu_per_request_s")
        ratio = fmt_ratio(ratios[run["round"]]) if run["side"] == "serve" else ""
        report.details.append(
            f"| {run['round']} | {run['side']} | {run['rps']:,.0f} | {ratio} | "
            f"{ms(run['p50_s'])} | {ms(run['p99_s'])} | "
            f"{fmt_time(cpu) if cpu is not None else '–'} | {run['loadavg'].split()[0]} |"
        )
    cpu = {side: r.get(f"{side}_cpu_per_request_s") for side in ("floor", "serve")}
    cpu_text = (
        f" CPU per request, median: serve {fmt_time(cpu['serve'])}, floor "
        f"{fmt_time(cpu['floor'])} ({cpu['serve'] / cpu['floor']:.2f}×)."
        if cpu["floor"] and cpu["serve"] else ""
    )
    report.details += [
        "",
        f"Medians: serve {r['serve_rps']:,.0f} requests/s, p50 {ms(r['serve_p50_s'])} ms, "
        f"p99 {ms(r['serve_p99_s'])} ms; floor {r['floor_rps']:,.0f} requests/s, "
        f"p50 {ms(r['floor_p50_s'])} ms, p99 {ms(r['floor_p99_s'])} ms; ratio of the "
        f"medians {fmt_ratio(r['rps_ratio_of_medians'])}.{cpu_text} "
        f"Peak RSS (VmHWM) after the load: serve {fmt_mib(r['serve_hwm_kib'])}, floor "
        f"{fmt_mib(r['floor_hwm_kib'])}.",
        "",
    ]


def s3_rows(report, results):
    r = load_json(os.path.join(results, "s3.json"))
    token_lines, refresh_lines = r["token_requests"], r["refresh_s3_requests"]
    provider = r["refresh_provider_requests"]

    def verbs(lines):
        """GET, PUT lease, PUT release...: what each request did, in order."""
        names = []
        for line in lines:
            words = line.split()
            verb, key = words[2], words[3] if len(words) > 3 else ""
            if "release" in line:
                names.append(f"{verb} release")
            elif key.endswith(".lease"):
                names.append(f"{verb} lease")
            else:
                names.append(verb)
        return ", ".join(names) or "none"

    plural = lambda n: f"{n} request" + ("" if n == 1 else "s")  # noqa: E731
    report.row(
        "8",
        "Requests of `tokvault token` (valid access token) on a vault in a bucket (Ceph radosgw), "
        "counted in its `-vv` log, vs a budget of 1 (the GET of the vault)",
        f"{plural(len(token_lines))} ({verbs(token_lines)})", plural(S3_TOKEN_REQUESTS_GOAL),
        len(token_lines) / S3_TOKEN_REQUESTS_GOAL, 1.0,
        f"≤ {plural(S3_TOKEN_REQUESTS_GOAL)}",
    )
    total = len(refresh_lines) + provider
    report.row(
        "8",
        "Requests of a one-record `tokvault refresh --force` on a vault in a bucket, rotation "
        "on: S3 requests (its `-vv` log) plus token-endpoint requests (the launcher's counter), "
        "vs a budget of 5 (lease, GET, PUT, release, the provider)",
        f"{plural(total)} ({len(refresh_lines)} S3: {verbs(refresh_lines)}; {provider} token endpoint)",
        plural(S3_REFRESH_REQUESTS_GOAL), total / S3_REFRESH_REQUESTS_GOAL, 1.0,
        f"≤ {plural(S3_REFRESH_REQUESTS_GOAL)}",
    )
    for what, measure, runs in (
        ("token", "`tokvault token` (valid access token)", r["runs"]),
        ("refresh", "one-record `tokvault refresh --force` (rotation on)", r["refresh_runs"]),
    ):
        local, s3 = r[what]["local"], r[what]["s3"]
        report.info_row(
            "9",
            f"Wall time of {measure}, vault in a bucket (radosgw on loopback) vs the same vault "
            f"in a local file, whole process, hyperfine median of {runs} (no goal)",
            fmt_time(s3["median"]), f"local file {fmt_time(local['median'])}",
            s3["median"] / local["median"],
        )
    stats = r["server"]
    report.details += [
        "### 8. A vault in a bucket",
        "",
        f"`{r['url']}` on Ceph radosgw at {r['endpoint']} (scripts/ceph-rgw: one monitor, one "
        "memstore OSD, all on this machine), next to the same vault in a local file "
        f"({r['vault_bytes']:,} B, two records). The S3 requests as tokvault logged them "
        "(`-vv`):",
        "",
        "| Command | Requests |",
        "|---|---|",
        f"| `token bench` | {'<br>'.join(f'`{line}`' for line in token_lines) or 'none'} |",
        f"| `refresh --force fresh` | "
        f"{'<br>'.join(f'`{line}`' for line in refresh_lines) or 'none'}"
        f"<br>{provider} to the token endpoint |",
        "",
        "| Command | Vault | Median | Mean ± σ | Min | Max | User | System |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for what, name in (("token", "token bench"), ("refresh", "refresh --force fresh")):
        for side, label in (("local", "local file"), ("s3", "bucket")):
            t = r[what][side]
            report.details.append(
                f"| `{name}` | {label} | {fmt_time(t['median'])} | "
                f"{fmt_time(t['mean'])} ± {fmt_time(t['stddev'])} | {fmt_time(t['min'])} | "
                f"{fmt_time(t['max'])} | {fmt_time(t['user'])} | {fmt_time(t['system'])} |"
            )
    report.details += [
        "",
        f"Launcher counters after the runs: {stats['refreshes_ok']:,} refreshes, "
        f"{stats['refresh_errors']} failed, {stats['replays_detected']} replays.",
        "",
    ]


# ---------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--target-dir", required=True)
    parser.add_argument("--since", type=float, required=True)
    parser.add_argument("--started", required=True)
    parser.add_argument("--loadavg", required=True)
    parser.add_argument("--mode", choices=("all", "token", "format", "refresh", "serve", "s3"),
                        default="all")
    parser.add_argument("--doc")
    args = parser.parse_args()
    wanted = lambda section: args.mode in ("all", section)  # noqa: E731
    results = args.results

    report = Report()
    if wanted("token"):
        token_rows(report, results)
        rss_rows(report, results)
    if wanted("format"):
        format_rows(report, criterion_medians(args.target_dir, args.since))
    if wanted("refresh"):
        refresh_rows(report, results)
    if wanted("serve"):
        serve_rows(report, results)
    if wanted("s3"):
        s3_rows(report, results)
    report.rows.sort(key=lambda row: row[0])  # stable: rows keep their order within a number
    table = report.table()

    print("\n".join(table))
    if report.misses:
        print(f"\n{len(report.misses)} goal(s) missed; see docs/BENCHMARKS.md", file=sys.stderr)
    with open("/proc/loadavg", encoding="utf-8") as f:
        load_now = " ".join(f.read().split()[:3])
    print(f"bench: load average at the start {args.loadavg}, at the end {load_now}",
          file=sys.stderr)

    if args.doc:
        if args.mode != "all":
            fail("--doc needs every benchmark's results (--mode all)")
        write_doc(args, report, table)
    return 0


def details_in_order(details):
    """The detail sections, ordered by their number (### N. ...)."""
    blocks, current = [], None
    for line in details:
        if line.startswith("### "):
            current = [line]
            blocks.append(current)
        elif current is not None:
            current.append(line)
    blocks.sort(key=lambda block: block[0])
    return [line for block in blocks for line in block]


def write_doc(args, report, table):
    with open(os.path.join(args.results, "commands.txt"), encoding="utf-8") as f:
        commands = f.read().rstrip("\n")
    generated = [
        BEGIN,
        "",
        "## Results",
        "",
        f"Measured by `scripts/bench` on {args.started}. Every ratio is tokvault's figure "
        "divided by the baseline measured in the same run; below 1 is faster (or smaller), "
        "except for throughput (requests/s, row 6), where above 1 is faster. Rows 9 have no "
        "goal: they show what a vault in a bucket costs next to a local file.",
        "",
        *table,
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine(args)],
        "",
        "## Details",
        "",
        *details_in_order(report.details),
        "## Commands",
        "",
        "As run by `scripts/bench`, in a scratch directory (`tokvault` is the release build, "
        "the vault and identity were made with it there):",
        "",
        "```sh",
        commands,
        "```",
        "",
        END,
    ]
    generated_text = "\n".join(generated) + "\n"
    try:
        with open(args.doc, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in old or END not in old:
        fail(f"{args.doc} lacks the marker lines; add\n{BEGIN}\n{END}")
    head, rest = old.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    tail = tail.lstrip("\n")
    text = head + generated_text + ("\n" + tail if tail else "")
    with open(args.doc + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(args.doc + ".tmp", args.doc)
    print(f"bench: wrote {args.doc} ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
