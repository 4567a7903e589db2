#!/usr/bin/env python3
"""velochat benchmark harness; run it through bench/run (which installs tools and builds).

Everything runs on 127.0.0.1: nginx (1 worker) plays OpenAI — a fast copy answering at once, a copy
waiting 200 ms and one waiting 2 s (echo module) — and an nginx proxy_pass hop in front of it is the
reference for the cheapest HTTP hop this machine can do. wrk (1 thread) drives the load.
"""
import base64
import hashlib
import hmac
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
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
SCENARIOS = ("fast", "slow", "parked", "breaker", "start", "redis")
# --only fast,parked runs a subset (to check one change quickly); a partial run never rewrites BENCHMARKS.md.
ONLY = next((tuple(a.split("=", 1)[1].split(",")) for a in sys.argv if a.startswith("--only=")), SCENARIOS)
if set(ONLY) - set(SCENARIOS):
    sys.exit(f"unknown scenario in --only: {', '.join(sorted(set(ONLY) - set(SCENARIOS)))} (choose from {', '.join(SCENARIOS)})")
DURATION = 5 if QUICK else 12
WARMUP = 1 if QUICK else 2
PORTS = {"fast": 18081, "slow": 18082, "parked": 18083, "hop_fast": 18084, "hop_slow": 18085, "velochat": 18090}
CALLER_KEY = "bench-caller-key"
SIGNING_KEY = "bench-signing-key"
SESSIONS = 256

SYSTEM_PROMPT = (
    "You are the customer support assistant of Northwind Outdoor, an online shop for outdoor clothing. "
    "Answer briefly and politely in the customer's language. Use only the facts in the conversation and in the "
    "context message. Shipping inside the EU takes 2-4 working days; returns are free within 30 days; refunds "
    "are handled by a person. Never invent order details, prices or policies. If you are not sure, say so and "
    "offer to connect the customer with the support team."
)
HISTORY = [
    ("user", "Hi, I ordered a rain jacket last week."),
    ("assistant", "Thanks for reaching out! Could you share your order reference so I can check it?"),
    ("user", "Sure, it is A-1001."),
]
QUESTION = "Where is my order? It was supposed to arrive yesterday."
CONTEXT = {"locale": "en-US", "account": {"tier": "pro", "status": "active"}, "activeOrder": {"reference": "A-1001", "stage": "shipped"}}
REPLY = {"reply": "Your order A-1001 shipped on Monday and should arrive within two working days.", "confidence": 0.92, "intent": "order", "needsHuman": False}
FAKE_BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764000000, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(REPLY), "refusal": None}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450, "prompt_tokens_details": {"cached_tokens": 0}},
}, separators=(",", ":"))


def sign(session, text):
    mac = hmac.new(SIGNING_KEY.encode(), struct.pack(">I", len(session)) + session.encode() + text.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def send_body(i):
    session = f"bench-{i}"
    history = [{"role": r, "content": c, **({"signature": sign(session, c)} if r == "assistant" else {})} for r, c in HISTORY]
    return json.dumps({"sessionId": session, "userText": QUESTION, "history": history, "context": CONTEXT})


def compat_body(_i):
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] + [{"role": r, "content": c} for r, c in HISTORY]
    messages.append({"role": "user", "content": QUESTION})
    return json.dumps({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 300})


def lua_string(text):
    return "[==[" + text + "]==]"


def wrk_script(name, path, bodies, session_header):
    """A wrk script rotating through pre-built bodies; done() prints the figures as JSON."""
    # wrk.format replaces wrk.headers with the table it is given, so every header goes in it.
    common = f'["Content-Type"] = "application/json", ["Authorization"] = "Bearer {CALLER_KEY}", ["X-Visitor-Id"] = "v-" .. i'
    session = ', ["X-Session-Id"] = "bench-" .. i' if session_header else ""
    lines = ["bodies = {" + ",".join(lua_string(b) for b in bodies) + "}", "i = 0", 'wrk.method = "POST"',
             "request = function()", "  i = i % #bodies + 1",
             '  return wrk.format(nil, "%s", {%s%s}, bodies[i])' % (path, common, session)]
    lines += ["end", "done = function(summary, latency, requests)",
              '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,'
              '\\"timeout\\":%d,\\"status\\":%d,\\"p50\\":%d,\\"p99\\":%d,\\"p999\\":%d,\\"max\\":%d}\\n",',
              "    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,",
              "    summary.errors.timeout, summary.errors.status, latency:percentile(50), latency:percentile(99),",
              "    latency:percentile(99.9), latency.max))", "end"]
    script = WORK / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


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
    def __init__(self, upstream_port, extra=None, name="velochat"):
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
        }
        # Any VELOCHAT_* variable given to bench/run reaches velochat (to measure a setting, say
        # VELOCHAT_WORKER_THREADS=2); the scenario's own settings still win.
        self.env.update({k: v for k, v in os.environ.items() if k.startswith("VELOCHAT_") and not k.startswith("VELOCHAT_BENCH")})
        self.env.update(extra or {})
        self.log = open(WORK / f"{name}.log", "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([str(BIN), "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
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


def wrk(port, script, connections, duration=DURATION, threads=1, timeout="10s", pid=None, settle=0.5):
    if WARMUP:
        subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{WARMUP}s", "-s", str(script), f"http://127.0.0.1:{port}"],
                       capture_output=True, check=False)
        # velochat finishes messages whose caller hung up: let the warm-up's last ones end first, or
        # the measured run starts with twice the load in flight (on the 200 ms fake it then opens 64
        # more upstream connections inside the measured window).
        time.sleep(settle)
    cpu_before = cpu_seconds(pid) if pid else None
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout", timeout, "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=False).stdout
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


def ms(us):
    return f"{us / 1000:.2f}"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), 0)
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Linux {platform.release()}; {wrk_v}; {nginx_v}; {rustc}"


def measure_parked(send_script, notes):
    # 10,000 requests in flight over HTTP/1.1 would need 10,000 upstream sockets on top of the
    # 10,000 inbound ones (this machine's open-file limit is 20,000); OpenAI negotiates HTTP/2, so
    # the parked fake speaks it too (h2c) and the requests share a few connections.
    vc = Velochat(PORTS["parked"], {"VELOCHAT__OPENAI__H2C": "true"}, name="velochat-parked")
    try:
        time.sleep(1)
        notes["idle_rss"] = vc.rss()
        # What an idle keep-alive connection costs, apart from any request on it.
        idle = [socket.create_connection(("127.0.0.1", PORTS["velochat"])) for _ in range(5000)]
        time.sleep(1)
        notes["idle_conn_kib"] = (vc.rss() - notes["idle_rss"]) * 1024 / len(idle)
        for s in idle:
            s.close()
        time.sleep(1)
        parked = wrk(PORTS["velochat"], send_script, 10000, duration=10 if not QUICK else 6, threads=2, timeout="15s", settle=3)
        notes["parked"] = parked
        notes["parked_rss"] = vc.peak_rss()
        vc.log.flush()
        log = (WORK / "velochat-parked.log").read_text(errors="replace")
        notes["parked_sources"] = {src: log.count(f'"source":"{src}"') for src in ("model", "fallback")}
    finally:
        vc.stop()


def measure_breaker(send_script, notes):
    vc = Velochat(1, {"VELOCHAT__BREAKER__CONSECUTIVE_FAILURES": "1", "VELOCHAT__BREAKER__OPEN_MS": "3600000"}, name="velochat-breaker")
    try:
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST", f"http://127.0.0.1:{PORTS['velochat']}/sendChatMessage",
                        "-H", f"Authorization: Bearer {CALLER_KEY}", "-H", "content-type: application/json",
                        "-d", send_body(0)], check=False)
        notes["breaker"] = wrk(PORTS["velochat"], send_script, 8)
    finally:
        vc.stop()


def measure_start(_send_script, notes):
    readies, loaded = [], []
    for i in range(5):
        vc = Velochat(PORTS["fast"], name=f"velochat-start-{i}")
        readies.append(vc.ready_ms)
        loaded.append(vc.tokenizer_ms)
        vc.stop()
    notes["ready_ms"] = statistics.median(readies)
    notes["tokenizer_ms"] = statistics.median(loaded)


def measure_redis(send_script, notes):
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
                notes[label] = wrk(PORTS["velochat"], send_script, 64)
            finally:
                vc.stop()
    finally:
        rs.terminate()
        rs.wait()


def main():
    send_script = wrk_script("send", "/sendChatMessage", [send_body(i) for i in range(SESSIONS)], False)
    compat_script = wrk_script("compat", "/v1/chat/completions", [compat_body(i) for i in range(SESSIONS)], True)
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
            if fake not in ONLY:
                continue
            vc = Velochat(PORTS[fake], name=f"velochat-{fake}")
            try:
                for conns in (8, 64):
                    direct = wrk(PORTS[fake], compat_script, conns)
                    rows.append((fake, conns, "direct to the fake", direct, direct))
                    rows.append((fake, conns, "nginx proxy_pass hop", wrk(PORTS[hop], compat_script, conns), direct))
                    pid = vc.proc.pid
                    rows.append((fake, conns, "velochat /v1/chat/completions", wrk(PORTS["velochat"], compat_script, conns, pid=pid), direct))
                    rows.append((fake, conns, "velochat /sendChatMessage", wrk(PORTS["velochat"], send_script, conns, pid=pid), direct))
                if fake == "fast":
                    notes["rss_after_load"] = vc.peak_rss()
            finally:
                vc.stop()

        for scenario in ("parked", "breaker", "start", "redis"):
            if scenario in ONLY:
                globals()["measure_" + scenario](send_script, notes)
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait()

    report = render(rows, notes)
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


def cpu_cell(r):
    return "—" if r.get("cpu_us") is None else f"{r['cpu_us']:.0f}"


def render(rows, notes):
    out = [f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.", "",
           "Command: `bench/run` (wrk 1 thread, nginx 1 worker, velochat release build, default configuration with the "
           "rate limits raised through `VELOCHAT_LIMIT_*` so every check still runs; logs at the default `info` level "
           "written to a file).", "",
           "| upstream | conns | path | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | errors | velochat CPU µs/req |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for fake, conns, path, r, direct in rows:
        added = (r["p50"] - direct["p50"]) / 1000
        label = "fast fake" if fake == "fast" else "200 ms fake"
        out.append(f"| {label} | {conns} | {path} | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['p999'])} | "
                   f"{'—' if r is direct else f'{added:+.2f}'} | {r['errors']} | {cpu_cell(r)} |")
    out += ["", "| measurement | result |", "|---|---|"]
    if "parked" in notes:
        p = notes["parked"]
        out.append(f"| 10,000 concurrent requests parked on a 2 s upstream (wrk -c10000, HTTP/2 upstream) | {p['rps']:,.0f} req/s, "
                   f"{p['errors']} errors, {notes['parked_sources']['model']:,} model / {notes['parked_sources']['fallback']:,} "
                   f"fallback replies, p50 {ms(p['p50'])} ms, p99 {ms(p['p99'])} ms, peak RSS {notes['parked_rss']:.0f} MiB |")
    if "breaker" in notes:
        b = notes["breaker"]
        out.append(f"| fallback with the breaker open (8 conns) | {b['rps']:,.0f} req/s, p50 {ms(b['p50'])} ms, "
                   f"p99 {ms(b['p99'])} ms, p99.9 {ms(b['p999'])} ms |")
    if "idle_rss" in notes:
        out += [f"| idle RSS (tokenizer loaded) | {notes['idle_rss']:.1f} MiB |",
                f"| RSS per idle keep-alive connection (5,000 opened) | {notes['idle_conn_kib']:.1f} KiB |"]
    if "rss_after_load" in notes:
        out.append(f"| peak RSS after the fast-fake runs | {notes['rss_after_load']:.1f} MiB |")
    if "ready_ms" in notes:
        out.append(f"| start to ready (`/readyz` 200, median of 5) | {notes['ready_ms']:.0f} ms "
                   f"(tokenizer loaded at {notes['tokenizer_ms']:.0f} ms) |")
    out.append(f"| open-file limit of the run (`ulimit -n`) | {os.sysconf('SC_OPEN_MAX')} |")
    for label in ("in-memory limits", "Redis limits and state"):
        if label in notes:
            r = notes[label]
            out.append(f"| /sendChatMessage, 64 conns, fast fake, {label} | {r['rps']:,.0f} req/s, p50 {ms(r['p50'])} ms, "
                       f"p99 {ms(r['p99'])} ms, {r['errors']} errors |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
