#!/usr/bin/env python3
"""velochat benchmark harness; run it through bench/run (which installs tools and builds).

Everything runs on 127.0.0.1: nginx (1 worker) plays OpenAI — a fast copy answering at once, a copy
waiting 200 ms and one waiting 2 s (echo module) — and an nginx proxy_pass hop in front of it is the
reference for the cheapest HTTP hop this machine can do. wrk (1 thread) drives the load.
"""
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# VELOCHAT_BENCH_BIN points at another build (a profiling build, say) without touching the default.
BIN = Path(os.environ.get("VELOCHAT_BENCH_BIN", ROOT / "target" / "release" / "velochat"))
WORK = Path(tempfile.mkdtemp(prefix="velochat-bench-"))
QUICK = "--quick" in sys.argv
SCENARIOS = ("fast", "slow", "parked", "breaker", "start", "redis", "kb", "sites")
# --only fast,parked runs a subset (to check one change quickly); a partial run never rewrites BENCHMARKS.md.
ONLY = next((tuple(a.split("=", 1)[1].split(",")) for a in sys.argv if a.startswith("--only=")), SCENARIOS)
if set(ONLY) - set(SCENARIOS):
    sys.exit(f"unknown scenario in --only: {', '.join(sorted(set(ONLY) - set(SCENARIOS)))} (choose from {', '.join(SCENARIOS)})")
DURATION = 5 if QUICK else 12
WARMUP = 1 if QUICK else 2
PORTS = {"fast": 18081, "slow": 18082, "parked": 18083, "hop_fast": 18084, "hop_slow": 18085, "velochat": 18090}
SETTLE = 0.5
sys.path.insert(0, str(Path(__file__).resolve().parent))
from traffic import CALLER_KEY, CONTEXT, FAKE_BODY, MIX_QUESTIONS, SIGNING_KEY, scripts, send_body  # noqa: E402

# The previous head's binary, built by bench/run from a worktree (`--baseline=REV`); measured in the
# same run as the current one so the ratios compare like with like.
BASELINE = os.environ.get("VELOCHAT_BENCH_BASELINE_BIN")
BINARIES = ([("previous", Path(BASELINE))] if BASELINE else []) + [("current", BIN)]


def nginx_conf():
    body = FAKE_BODY.replace("\\", "\\\\").replace("'", "\\'")
    fake = lambda port, delay, h2=False: (
        f"  server {{ listen 127.0.0.1:{port} backlog=8192{' http2' if h2 else ''}; http2_max_concurrent_streams 20000; "
        f"location / {{ default_type application/json; "
        + (f"echo_read_request_body; echo_sleep {delay}; echo '{body}'; }} }}" if delay else f"return 200 '{body}'; }} }}")
    )
    return f"""
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {WORK}/nginx.pid;
error_log {WORK}/nginx-error.log error;
events {{ worker_connections 32768; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path {WORK}/body; proxy_temp_path {WORK}/proxy;
  upstream fast_fake {{ server 127.0.0.1:{PORTS['fast']}; keepalive 256; }}
  upstream slow_fake {{ server 127.0.0.1:{PORTS['slow']}; keepalive 256; }}
{fake(PORTS['fast'], None)}
{fake(PORTS['slow'], 0.2)}
{fake(PORTS['parked'], 2, h2=True)}
  server {{ listen 127.0.0.1:{PORTS['hop_fast']} backlog=8192; location / {{ proxy_pass http://fast_fake; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{PORTS['hop_slow']} backlog=8192; location / {{ proxy_pass http://slow_fake; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}
"""


def wait_port(port, timeout=10.0):
    start = time.time()
    while time.time() - start < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


def http_get_ok(port, path):
    try:
        s = socket.create_connection(("127.0.0.1", port), 0.5)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CALLER_KEY}\r\nConnection: close\r\n\r\n".encode())
        data = s.recv(64)
        s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def readyz(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), 0.5)
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    except (OSError, ValueError, IndexError):
        return {}


def proc_status(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # MiB
    return 0.0


class Velochat:
    def __init__(self, upstream_port, extra=None, name="velochat", binary=BIN):
        self.env = {
            "PATH": os.environ["PATH"], "VELOCHAT_ADDR": f"127.0.0.1:{PORTS['velochat']}",
            "OPENAI_API_KEY": "sk-bench-0123456789abcdef", "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
            "VELOCHAT_API_KEYS": CALLER_KEY, "VELOCHAT_SIGNING_KEY": SIGNING_KEY,
            "DATABASE_URL": f"sqlite://{WORK}/{name}.db",
            # Limits stay on, raised above the load (every check still runs).
            "VELOCHAT_LIMIT_SESSION_BURST": "1000000000", "VELOCHAT_LIMIT_SESSION_PER_MINUTE": "1000000000",
            "VELOCHAT_LIMIT_VISITOR_BURST": "1000000000", "VELOCHAT_LIMIT_VISITOR_PER_MINUTE": "1000000000",
            "VELOCHAT_LIMIT_IP_BURST": "1000000000", "VELOCHAT_LIMIT_IP_PER_MINUTE": "1000000000",
            "VELOCHAT_LIMIT_CALLER_PER_MINUTE": "1000000000",
            # wrk repeats one question; the repeated-question handoff would silence the bot.
            "VELOCHAT__HANDOFF__REPEAT_COUNT": "1000000000",
            # wrk and nginx share this machine's CPUs: one worker unless the run says otherwise
            # (VELOCHAT_WORKER_THREADS=2 bench/run); production's default is one per CPU.
            "VELOCHAT_WORKER_THREADS": "1",
        }
        # Any VELOCHAT_* variable given to bench/run reaches velochat (to measure a setting, say
        # VELOCHAT_WORKER_THREADS=2); the scenario's own settings still win.
        self.env.update({k: v for k, v in os.environ.items() if k.startswith("VELOCHAT_") and not k.startswith("VELOCHAT_BENCH")})
        self.env.update(extra or {})
        self.log = open(WORK / f"{name}.log", "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([str(binary), "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
        while not http_get_ok(PORTS["velochat"], "/readyz"):
            if self.proc.poll() is not None:
                raise RuntimeError(f"velochat exited: see {WORK / (name + '.log')}")
            time.sleep(0.001)
        self.ready_ms = (time.perf_counter() - self.started) * 1000
        # The tokenizer loads in the background after ready; wait for it so figures include it.
        while readyz(PORTS["velochat"]).get("tokenizer") != "loaded":
            time.sleep(0.005)
        self.tokenizer_ms = (time.perf_counter() - self.started) * 1000

    def rss(self):
        return proc_status(self.proc.pid, "VmRSS")

    def peak_rss(self):
        return proc_status(self.proc.pid, "VmHWM")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


RUN = [0]


def wrk(port, script, connections, duration=DURATION, threads=1, timeout="10s", pid=None, settle=SETTLE):
    # Each run (and warm-up) of the realistic mix starts at sessions no earlier run used.
    def offset():
        RUN[0] += 1
        return ["--", str(RUN[0] * 17_000)]
    if WARMUP:
        subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{WARMUP}s", "-s", str(script), f"http://127.0.0.1:{port}"] + offset(),
                       capture_output=True, check=False)
        # velochat finishes messages whose caller hung up: let the warm-up's last ones end first, or
        # the measured run starts with twice the load in flight (on the 200 ms fake it then opens 64
        # more upstream connections inside the measured window).
        time.sleep(settle)
    cpu_before = cpu_seconds(pid) if pid else None
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout", timeout, "-s", str(script),
                          f"http://127.0.0.1:{port}"] + offset(), capture_output=True, text=True, check=False).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else None
    line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    # velochat's own CPU (user + system) per request: what the rest of the machine cannot use.
    r["cpu_us"] = cpu * 1e6 / r["requests"] if cpu is not None and r["requests"] else None
    return r


from report import ms  # noqa: E402


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), 0)
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}; {wrk_v}; {nginx_v}; {rustc}"


def measure_parked(scripts_by, notes):
    # 10,000 requests in flight over HTTP/1.1 would need 10,000 upstream sockets on top of the
    # 10,000 inbound ones; OpenAI negotiates HTTP/2, so the parked fake speaks it too (h2c) and the
    # requests share a few connections.
    for label, binary in BINARIES:
        vc = Velochat(PORTS["parked"], {"VELOCHAT__OPENAI__H2C": "true"}, name=f"velochat-parked-{label}", binary=binary)
        try:
            time.sleep(1)
            notes[("idle_rss", label)] = vc.rss()
            # What an idle keep-alive connection costs, apart from any request on it.
            idle = [socket.create_connection(("127.0.0.1", PORTS["velochat"])) for _ in range(5000)]
            time.sleep(1)
            notes[("idle_conn_kib", label)] = (vc.rss() - notes[("idle_rss", label)]) * 1024 / len(idle)
            for conn in idle:
                conn.close()
            time.sleep(1)
            parked = wrk(PORTS["velochat"], scripts_by[("repeated", "send")], 10000, duration=10 if not QUICK else 6,
                         threads=2, timeout="15s", settle=3)
            notes[("parked", label)] = parked
            notes[("parked_rss", label)] = vc.peak_rss()
            vc.log.flush()
            log = (WORK / f"velochat-parked-{label}.log").read_text(errors="replace")
            notes[("parked_sources", label)] = {src: log.count(f'"source":"{src}"') for src in ("model", "fallback")}
        finally:
            vc.stop()


def measure_breaker(scripts_by, notes):
    vc = Velochat(1, {"VELOCHAT__BREAKER__CONSECUTIVE_FAILURES": "1", "VELOCHAT__BREAKER__OPEN_MS": "3600000"}, name="velochat-breaker")
    try:
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST", f"http://127.0.0.1:{PORTS['velochat']}/sendChatMessage",
                        "-H", f"Authorization: Bearer {CALLER_KEY}", "-H", "content-type: application/json",
                        "-d", send_body(0)], check=False)
        notes["breaker"] = wrk(PORTS["velochat"], scripts_by[("repeated", "send")], 8)
    finally:
        vc.stop()


def measure_start(_scripts_by, notes):
    for label, binary in BINARIES:
        readies, loaded = [], []
        for i in range(5):
            vc = Velochat(PORTS["fast"], name=f"velochat-start-{label}-{i}", binary=binary)
            readies.append(vc.ready_ms)
            loaded.append(vc.tokenizer_ms)
            vc.stop()
        notes[("ready_ms", label)] = statistics.median(readies)
        notes[("tokenizer_ms", label)] = statistics.median(loaded)


def measure_redis(scripts_by, notes):
    redis = shutil.which("redis-server")
    if not redis:
        return
    port = 18379
    rs = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        for label, extra in (("in-memory limits", {}), ("Redis limits and state", {"REDIS_URL": f"redis://127.0.0.1:{port}"})):
            vc = Velochat(PORTS["fast"], extra, name="velochat-" + label.split()[0].lower())
            try:
                notes[label] = wrk(PORTS["velochat"], scripts_by[("realistic", "send")], 64)
            finally:
                vc.stop()
    finally:
        rs.terminate()
        rs.wait()


def help_pages(count=300):
    """~300 help pages: every answer section of the Debian FAQ (text nobody here wrote), then the
    shop's own help pages (bench/kb_corpus.py) up to `count`, so the traffic's questions find passages."""
    from faq import faq_pairs
    from kb_corpus import documents
    faq = [{"id": f"faq-{number}", "title": f"Debian FAQ {number}", "body": body} for number, _question, body in faq_pairs()]
    return faq + documents(max(count - len(faq), 0))


def kb_import(admin, docs):
    import urllib.request
    for i in range(0, len(docs), 5000):
        body = json.dumps({"documents": docs[i:i + 5000]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{PORTS['velochat']}/admin/kb/import", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=300).read()


def mean_of(runs):
    """One wrk result from several: every figure averaged (rate, latency percentiles, CPU per request)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and all(r.get(k) is not None for r in runs)]
    return {**runs[0], **{k: statistics.mean(r[k] for r in runs) for k in keys}}


def measure_kb(scripts_by, notes):
    """Both chat routes, realistic traffic, with the knowledge base off, then on with ~300 help pages
    (lexical search), then on with 10,000 documents: the same binary and traffic each time. Two
    rounds, the second in reverse order, means reported: a single pass on this shared 2-CPU host
    swings ±10 % from one run to the next."""
    import urllib.request
    from kb_corpus import documents
    admin = "bench-admin-key"
    sets = (("off", None), ("300", help_pages()), ("10k", documents()))
    rounds = 1 if QUICK else 2
    runs = {}
    for round_no in range(rounds):
        for label, docs in (sets if round_no % 2 == 0 else tuple(reversed(sets))):
            extra = {"VELOCHAT_KB_ENABLED": "off"} if docs is None else {"VELOCHAT_ADMIN_KEY": admin}
            vc = Velochat(PORTS["fast"], extra, name=f"velochat-kb-{label}-{round_no}")
            try:
                if docs is not None:
                    kb_import(admin, docs)
                    notes[("kb_docs", label)] = len(docs)
                notes[("kb_rss", label)] = vc.rss()
                # One of the traffic's questions, to show what the knowledge base adds to each request.
                probe_body = json.dumps({"sessionId": f"kb-probe-{label}-{round_no}", "userText": MIX_QUESTIONS[1], "context": CONTEXT}).encode()
                probe = urllib.request.Request(f"http://127.0.0.1:{PORTS['velochat']}/sendChatMessage", data=probe_body, method="POST",
                                               headers={"Authorization": f"Bearer {CALLER_KEY}", "Content-Type": "application/json"})
                notes[("kb_sources", label)] = len(json.loads(urllib.request.urlopen(probe, timeout=10).read()).get("sources", []))
                for conns in (8, 64):
                    for route, _path in ROUTES:
                        runs.setdefault((label, conns, route), []).append(
                            wrk(PORTS["velochat"], scripts_by[("realistic", route)], conns, pid=vc.proc.pid))
            finally:
                vc.stop()
    notes["kb_rounds"] = rounds
    for (label, conns, route), results in runs.items():
        notes[("kb", label, conns, route)] = mean_of(results)


ROUTES = (("compat", "/v1/chat/completions"), ("send", "/sendChatMessage"))


def measure_fake(fake, hop, scripts_by, rows):
    """References once per connection count, then every binary on both routes and both mixes
    (the realistic mix on the fast fake only: on the 200 ms fake the wait is the figure)."""
    mixes = ("repeated", "realistic") if fake == "fast" else ("repeated",)
    refs = {}
    for conns in (8, 64):
        direct = wrk(PORTS[fake], scripts_by[("repeated", "compat")], conns)
        refs[conns] = direct
        rows.append((fake, conns, "—", "—", "direct to the fake", direct, direct))
        rows.append((fake, conns, "—", "—", "nginx proxy_pass hop", wrk(PORTS[hop], scripts_by[("repeated", "compat")], conns), direct))
    peak = {}
    for label, binary in BINARIES:
        vc = Velochat(PORTS[fake], name=f"velochat-{fake}-{label}", binary=binary)
        try:
            for conns in (8, 64):
                for mix in mixes:
                    for route, path in ROUTES:
                        r = wrk(PORTS["velochat"], scripts_by[(mix, route)], conns, pid=vc.proc.pid)
                        rows.append((fake, conns, label, mix, f"velochat {path}", r, refs[conns]))
            peak[label] = vc.peak_rss()
        finally:
            vc.stop()
    return peak


def main():
    scripts_by = scripts(WORK)
    (WORK / "nginx.conf").write_text(nginx_conf())
    for d in ("body", "proxy"):
        (WORK / d).mkdir(exist_ok=True)
    nginx = subprocess.Popen(["nginx", "-c", str(WORK / "nginx.conf"), "-p", str(WORK), "-g", "daemon off;"])
    rows, notes = [], {}
    try:
        for port in PORTS.values():
            if port != PORTS["velochat"]:
                wait_port(port)
        for fake, hop in (("fast", "hop_fast"), ("slow", "hop_slow")):
            if fake in ONLY:
                peak = measure_fake(fake, hop, scripts_by, rows)
                if fake == "fast":
                    notes.update({("rss_after_load", label): rss for label, rss in peak.items()})
        for scenario in ("parked", "breaker", "start", "redis", "kb"):
            if scenario in ONLY:
                globals()["measure_" + scenario](scripts_by, notes)
        if "sites" in ONLY:
            from sites import measure_sites
            from traffic import realistic_script
            measure_sites((Velochat, PORTS, wrk, realistic_script, WORK), notes)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()

    from report import render
    report = render(rows, notes, BINARIES, machine())
    print(report)
    if not QUICK and ONLY == SCENARIOS:
        text = (ROOT / "BENCHMARKS.md").read_text() if (ROOT / "BENCHMARKS.md").exists() else ""
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        if begin in text and end in text:
            text = text[: text.index(begin) + len(begin)] + "\n" + report + "\n" + text[text.index(end):]
        else:
            text = f"# Benchmarks\n\n{begin}\n{report}\n{end}\n"
        (ROOT / "BENCHMARKS.md").write_text(text)
        print(f"BENCHMARKS.md updated (work files in {WORK})")


if __name__ == "__main__":
    main()
