"""Renders the benchmark's tables: every row, the current/previous ratios, and the targets."""
import os
import time


def ms(us):
    return f"{us / 1000:.2f}"


def cpu_cell(r):
    return "—" if r.get("cpu_us") is None else f"{r['cpu_us']:.0f}"


def find(rows, fake, conns, label, mix, path_end):
    return next((r for f, c, lab, m, p, r, _ in rows if f == fake and c == conns and lab == label and m == mix and p.endswith(path_end)), None)


def ratio_lines(rows, labels):
    if "previous" not in labels:
        return []
    out = ["", "Current binary against the previous one, same run, same machine (64 connections, fast fake):", "",
           "| traffic | path | previous req/s | current req/s | ratio (target ≥ 0.85) |", "|---|---|---|---|---|"]
    for mix in ("repeated", "realistic"):
        for path in ("/v1/chat/completions", "/sendChatMessage"):
            prev, cur = find(rows, "fast", 64, "previous", mix, path), find(rows, "fast", 64, "current", mix, path)
            if prev and cur:
                out.append(f"| {mix} | {path} | {prev['rps']:,.0f} | {cur['rps']:,.0f} | {cur['rps'] / prev['rps']:.2f} |")
    return out


def target_lines(rows, notes, labels):
    cur = "current"
    checks = []
    if "previous" in labels:
        ratios = []
        for mix in ("repeated", "realistic"):
            for path in ("/v1/chat/completions", "/sendChatMessage"):
                prev, now = find(rows, "fast", 64, "previous", mix, path), find(rows, "fast", 64, cur, mix, path)
                if prev and now:
                    ratios.append(now["rps"] / prev["rps"])
        if ratios:
            checks.append(("64-connection throughput ≥ 0.85 × previous (both routes, both mixes)", f"lowest {min(ratios):.2f}", min(ratios) >= 0.85))
    p99s = [r["p99"] for f, c, lab, m, p, r, _ in rows if f == "fast" and c == 8 and lab == cur]
    if p99s:
        checks.append(("8 connections p99 ≤ 2 ms", f"worst {ms(max(p99s))} ms", max(p99s) <= 2000))
    slow = [r["p99"] for f, c, lab, m, p, r, _ in rows if f == "slow" and lab == cur]
    if slow:
        checks.append(("200 ms fake p99 ≤ 206 ms", f"worst {ms(max(slow))} ms", max(slow) <= 206000))
    if ("parked", cur) in notes:
        p, rss = notes[("parked", cur)], notes[("parked_rss", cur)]
        checks.append(("10,000 in flight: 0 errors, RSS < 400 MB", f"{p['errors']} errors, {rss:.0f} MiB", p["errors"] == 0 and rss * 1.048576 < 400))
    if ("idle_rss", cur) in notes:
        idle = notes[("idle_rss", cur)]
        checks.append(("idle RSS < 30 MB", f"{idle:.1f} MiB", idle * 1.048576 < 30))
    if ("ready_ms", cur) in notes:
        ready = notes[("ready_ms", cur)]
        checks.append(("start to ready < 100 ms", f"{ready:.0f} ms", ready < 100))
    if not checks:
        return []
    out = ["", "| target (current binary) | result | met |", "|---|---|---|"]
    out += [f"| {name} | {result} | {'yes' if ok else '**no**'} |" for name, result, ok in checks]
    return out


def kb_lines(notes):
    if ("kb", "on", 64) not in notes:
        return []
    out = ["", "Knowledge base off against on (10,000 help documents, `bench/kb_corpus.py`), /sendChatMessage, realistic "
           f"traffic, fast fake; the probe question got {notes[('kb_sources', 'on')]} sources with it on, "
           f"{notes[('kb_sources', 'off')]} off:", "",
           "| conns | off req/s | on req/s | ratio (target ≥ 0.8) | off p99 ms | on p99 ms | off CPU µs/req | on CPU µs/req |",
           "|---|---|---|---|---|---|---|---|"]
    for conns in (8, 64):
        off, on = notes[("kb", "off", conns)], notes[("kb", "on", conns)]
        out.append(f"| {conns} | {off['rps']:,.0f} | {on['rps']:,.0f} | {on['rps'] / off['rps']:.2f} | {ms(off['p99'])} | "
                   f"{ms(on['p99'])} | {cpu_cell(off)} | {cpu_cell(on)} |")
    return out


def render(rows, notes, binaries, machine):
    labels = [label for label, _ in binaries]
    out = [f"Measured {time.strftime('%Y-%m-%d')} on {machine}.", "",
           "Command: `bench/run` (wrk 1 thread, nginx 1 worker, release builds of the previous and the current "
           "head measured one after the other in this run, default configuration with the rate limits raised "
           "through `VELOCHAT_LIMIT_*` so every check still runs; logs at the default `info` level written to a "
           "file). Traffic: `repeated` = 256 sessions re-sending one question; `realistic` = a new session every "
           "5 messages, a different question on every request.", "",
           "| upstream | conns | binary | traffic | path | req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | errors | velochat CPU µs/req |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fake, conns, label, mix, path, r, direct in rows:
        added = (r["p50"] - direct["p50"]) / 1000
        upstream = "fast fake" if fake == "fast" else "200 ms fake"
        out.append(f"| {upstream} | {conns} | {label} | {mix} | {path} | {r['rps']:,.0f} | {ms(r['p50'])} | {ms(r['p99'])} | "
                   f"{ms(r['p999'])} | {'—' if r is direct else f'{added:+.2f}'} | {r['errors']} | {cpu_cell(r)} |")
    out += ratio_lines(rows, labels)
    out += ["", "| measurement | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]

    def row(name, key, fmt):
        if any((key, label) in notes for label in labels):
            out.append(f"| {name} | " + " | ".join(fmt(label) if (key, label) in notes else "—" for label in labels) + " |")

    def parked(label):
        p, src = notes[("parked", label)], notes[("parked_sources", label)]
        return (f"{p['rps']:,.0f} req/s, {p['errors']} errors, {src['model']:,} model / {src['fallback']:,} fallback, "
                f"p50 {ms(p['p50'])} ms, p99 {ms(p['p99'])} ms, peak RSS {notes[('parked_rss', label)]:.0f} MiB")

    row("10,000 concurrent requests parked on a 2 s upstream (wrk -c10000, HTTP/2 upstream)", "parked", parked)
    row("idle RSS (tokenizer loaded)", "idle_rss", lambda label: f"{notes[('idle_rss', label)]:.1f} MiB")
    row("RSS per idle keep-alive connection (5,000 opened)", "idle_conn_kib", lambda label: f"{notes[('idle_conn_kib', label)]:.1f} KiB")
    row("peak RSS after the fast-fake runs", "rss_after_load", lambda label: f"{notes[('rss_after_load', label)]:.1f} MiB")
    row("start to ready (`/readyz` 200, median of 5)", "ready_ms",
        lambda label: f"{notes[('ready_ms', label)]:.0f} ms (tokenizer loaded at {notes[('tokenizer_ms', label)]:.0f} ms)")
    out += ["", "| measurement (current binary) | result |", "|---|---|"]
    if "breaker" in notes:
        b = notes["breaker"]
        out.append(f"| fallback with the breaker open (8 conns) | {b['rps']:,.0f} req/s, p50 {ms(b['p50'])} ms, "
                   f"p99 {ms(b['p99'])} ms, p99.9 {ms(b['p999'])} ms |")
    out.append(f"| open-file limit of the run (`ulimit -n`) | {os.sysconf('SC_OPEN_MAX')} |")
    for label in ("in-memory limits", "Redis limits and state"):
        if label in notes:
            r = notes[label]
            out.append(f"| /sendChatMessage, 64 conns, fast fake, realistic traffic, {label} | {r['rps']:,.0f} req/s, "
                       f"p50 {ms(r['p50'])} ms, p99 {ms(r['p99'])} ms, {r['errors']} errors |")
    out += kb_lines(notes)
    out += target_lines(rows, notes, labels)
    return "\n".join(out)
