#!/usr/bin/env python3
"""Soak: N replicas sharing one Redis and one PostgreSQL, the realistic traffic mix on each, for a
while; then every event row is counted against the replies the replicas say they sent.

Run it through bench/soak (which installs the tools and builds). Reports requests answered, event
rows written, each replica's RSS after warm-up and at the end, and every WARN/ERROR line grouped.
Everything runs on 127.0.0.1; each run uses a fresh database and a fresh Redis key prefix.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (nginx config, wrk runner, process helpers)
from traffic import CALLER_KEY, SIGNING_KEY, realistic_script  # noqa: E402

ADMIN = "soak-admin"
PG = os.environ.get("VELOCHAT_SOAK_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("VELOCHAT_SOAK_REDIS", "redis://127.0.0.1:6379")


def psql(sql):
    subprocess.run(["psql", f"{PG}/test", "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True)


def count_rows(database):
    out = subprocess.run(["psql", f"{PG}/{database}", "-qAtc", "SELECT COUNT(*) FROM velochat_events"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def metric(port, series):
    out = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {ADMIN}", f"http://127.0.0.1:{port}/metrics"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[1])
    return 0.0


def start_replica(i, port, database, prefix, log):
    env = {
        "PATH": os.environ["PATH"], "VELOCHAT_ADDR": f"127.0.0.1:{port}",
        "OPENAI_API_KEY": "sk-soak-0123456789abcdef", "OPENAI_BASE_URL": f"http://127.0.0.1:{bench.PORTS['fast']}/v1",
        "VELOCHAT_API_KEYS": CALLER_KEY, "VELOCHAT_ADMIN_KEY": ADMIN, "VELOCHAT_SIGNING_KEY": SIGNING_KEY,
        "DATABASE_URL": f"{PG}/{database}", "REDIS_URL": REDIS, "VELOCHAT__STORAGE__REDIS_KEY_PREFIX": prefix,
        "VELOCHAT__STORAGE__EXPECTED_REPLICAS": "3",
        "VELOCHAT_LIMIT_SESSION_BURST": "1000000000", "VELOCHAT_LIMIT_SESSION_PER_MINUTE": "1000000000",
        "VELOCHAT_LIMIT_VISITOR_BURST": "1000000000", "VELOCHAT_LIMIT_VISITOR_PER_MINUTE": "1000000000",
        "VELOCHAT_LIMIT_CALLER_PER_MINUTE": "1000000000", "VELOCHAT_LIMIT_IP_BURST": "1000000000",
        "VELOCHAT_LIMIT_IP_PER_MINUTE": "1000000000",
    }
    proc = subprocess.Popen([str(bench.BIN), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    while not bench.http_get_ok(port, "/readyz"):
        if proc.poll() is not None:
            raise RuntimeError(f"replica {i} exited; see {log.name}")
        time.sleep(0.01)
    return proc


def grouped_problems(paths):
    groups = Counter()
    for path in paths:
        for line in Path(path).read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("level") in ("WARN", "ERROR"):
                groups[(entry["level"], re.sub(r"\d+", "N", entry.get("message", "")))] += 1
    return groups


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8, help="per replica")
    args = parser.parse_args()
    work = bench.WORK
    database = f"velochat_soak_{uuid.uuid4().hex[:12]}"
    prefix = f"vcsoak:{uuid.uuid4().hex[:12]}:"
    psql(f"CREATE DATABASE {database}")
    (work / "nginx.conf").write_text(bench.nginx_conf())
    for d in ("body", "proxy"):
        (work / d).mkdir(exist_ok=True)
    nginx = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work), "-g", "daemon off;"])
    ports = [18091 + i for i in range(args.replicas)]
    logs = [open(work / f"replica-{i}.log", "wb") for i in range(args.replicas)]
    procs = []
    try:
        bench.wait_port(bench.PORTS["fast"])
        procs = [start_replica(i, port, database, prefix, logs[i]) for i, port in enumerate(ports)]
        script = realistic_script(work, "soak", "/sendChatMessage", False)
        duration = int(args.minutes * 60)
        loads = [subprocess.Popen(["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
                                   f"http://127.0.0.1:{port}", "--", str(i * 40_000)], stdout=subprocess.PIPE, text=True)
                 for i, port in enumerate(ports)]
        time.sleep(min(20, duration / 3))
        warm = [bench.proc_status(p.pid, "VmRSS") for p in procs]
        outs = [load.communicate()[0] for load in loads]
        time.sleep(1)
        answered = sum(metric(port, 'velochat_requests_total{route="send_chat_message",status="200"}') for port in ports)
        dropped = sum(metric(port, "velochat_events_dropped_total") for port in ports)
        end = [bench.proc_status(p.pid, "VmRSS") for p in procs]
        wrk_results = [json.loads(next(l for l in out.splitlines() if l.startswith("WRKJSON "))[8:]) for out in outs]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        for log in logs:
            log.close()
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()
    rows = count_rows(database)
    problems = grouped_problems([log.name for log in logs])
    psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    keys = subprocess.run(["redis-cli", "-u", REDIS, "--scan", "--pattern", prefix + "*"], capture_output=True, text=True).stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(["redis-cli", "-u", REDIS, "del", *keys[start:start + 500]], capture_output=True)
    requests = sum(r["requests"] for r in wrk_results)
    errors = sum(r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"] for r in wrk_results)
    rate = answered / (args.minutes * 60)
    out = [f"Soak {time.strftime('%Y-%m-%d')}: {args.replicas} replicas × {args.connections} connections, realistic traffic "
           f"(new session every 5 messages), {args.minutes:g} min, one PostgreSQL and one Redis on 127.0.0.1.", "",
           "| measurement | result |", "|---|---|",
           f"| requests completed by wrk | {requests:,} ({errors} errors) |",
           f"| replies answered 200 (velochat_requests_total) | {answered:,.0f} ({rate:,.0f}/s, {rate / args.replicas:,.0f}/s per replica) |",
           f"| event rows in PostgreSQL | {rows:,} |",
           f"| events lost (answered − rows) | {answered - rows:,.0f} |",
           f"| velochat_events_dropped_total | {dropped:,.0f} |"]
    for i, (w, e) in enumerate(zip(warm, end)):
        out.append(f"| replica {i} RSS after warm-up → end | {w:.1f} → {e:.1f} MiB |")
    out.append("| WARN/ERROR lines | " + ("none" if not problems else "; ".join(f"{n}× {lvl} {msg}" for (lvl, msg), n in problems.most_common())) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
