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
           "| traffic | path | previous req/s | current req/s | ratio |", "|---|---|---|---|---|"]
    for mix in ("repeated", "realistic"):
        for path in ("/v1/chat/completions", "/sendChatMessage"):
            prev, cur = find(rows, "fast", 64, "previous", mix, path), find(rows, "fast", 64, "current", mix, path)
            if prev and cur:
                out.append(f"| {mix} | {path} | {prev['rps']:,.0f} | {cur['rps']:,.0f} | {cur['rps'] / prev['rps']:.2f} |")
    return out


def target_lines(rows, notes, labels):
    """Issue 32's targets, then the earlier ones still in force."""
    cur = "current"
    checks = []
    if "previous" in labels:
        ratios = []
        for path in ("/v1/chat/completions", "/sendChatMessage"):
            prev, now = find(rows, "fast", 64, "previous", "realistic", path), find(rows, "fast", 64, cur, "realistic", path)
            if prev and now:
                ratios.append(now["rps"] / prev["rps"])
        if ratios:
            checks.append(("realistic traffic, both chat routes, 64 conns ≥ 1.0 × previous (stretch 1.15)",
                           f"lowest {min(ratios):.2f}" + (" (stretch met)" if min(ratios) >= 1.15 else ""), min(ratios) >= 1.0))
        worse = []
        for path in ("/v1/chat/completions", "/sendChatMessage"):
            prev, now = find(rows, "fast", 8, "previous", "realistic", path), find(rows, "fast", 8, cur, "realistic", path)
            if prev and now:
                worse.append((now["p99"], prev["p99"]))
        if worse:
            checks.append(("8 conns realistic p99 no worse than previous (both routes)",
                           ", ".join(f"{ms(n)} against {ms(p)} ms" for n, p in worse), all(n <= p for n, p in worse)))
    if ("kb", "300", 64, "send") in notes:
        ratios = [notes[("kb", "300", c, r)]["rps"] / notes[("kb", "off", c, r)]["rps"] for c in (8, 64) for r in ("compat", "send")]
        checks.append(("~300 help pages, lexical ≥ 0.9 × knowledge base off (both routes, 8 and 64 conns)", f"lowest {min(ratios):.2f}", min(ratios) >= 0.9))
    if ("parked", cur) in notes:
        p, rss = notes[("parked", cur)], notes[("parked_rss", cur)]
        checks.append(("10,000 in flight: 0 errors, peak RSS < 250 MiB", f"{p['errors']} errors, {rss:.0f} MiB", p["errors"] == 0 and rss < 250))
    slow = [r["p99"] for f, c, lab, m, p, r, _ in rows if f == "slow" and lab == cur]
    if slow:
        checks.append(("200 ms fake p99 ≤ 206 ms (earlier round)", f"worst {ms(max(slow))} ms", max(slow) <= 206000))
    if ("ready_ms", cur) in notes:
        ready = notes[("ready_ms", cur)]
        checks.append(("start to ready < 100 ms (earlier round)", f"{ready:.0f} ms", ready < 100))
    if not checks:
        return []
    out = ["", "| target (current binary) | result | met |", "|---|---|---|"]
    out += [f"| {name} | {result} | {'yes' if ok else '**no**'} |" for name, result, ok in checks]
    return out


def kb_lines(notes):
    if ("kb", "off", 64, "send") not in notes:
        return []
    sets = [label for label in ("300", "10k") if ("kb", label, 64, "send") in notes]
    described = ", ".join(f"{notes[('kb_docs', label)]:,} documents: {notes[('kb_sources', label)]} sources, "
                          f"RSS {notes[('kb_rss', label)]:.1f} MiB once imported" for label in sets)
    out = ["", "Knowledge base off, then on with ~300 help pages (the Debian FAQ's answer sections and the shop's own "
           "pages, `bench/kb_corpus.py`), then on with 10,000 shop pages; lexical search, realistic traffic, fast fake, same "
           f"binary; {notes.get('kb_rounds', 1)} round(s), the second in reverse order, means shown. The probe question got: off {notes[('kb_sources', 'off')]} sources (RSS {notes[('kb_rss', 'off')]:.1f} MiB); "
           f"{described}.", "",
           "| conns | path | off req/s | " + " | ".join(f"{notes[('kb_docs', s)]:,} docs req/s | ratio" for s in sets)
           + " | off p99 ms | " + " | ".join(f"{notes[('kb_docs', s)]:,} docs p99 ms" for s in sets) + " | CPU µs/req (off / " + " / ".join(sets) + ") |",
           "|---|---|---|" + "---|---|" * len(sets) + "---|" + "---|" * len(sets) + "---|"]
    for conns in (8, 64):
        for route, path in (("compat", "/v1/chat/completions"), ("send", "/sendChatMessage")):
            off = notes[("kb", "off", conns, route)]
            on = [notes[("kb", s, conns, route)] for s in sets]
            out.append(f"| {conns} | {path} | {off['rps']:,.0f} | " + " | ".join(f"{r['rps']:,.0f} | {r['rps'] / off['rps']:.2f}" for r in on)
                       + f" | {ms(off['p99'])} | " + " | ".join(ms(r["p99"]) for r in on)
                       + " | " + " / ".join(cpu_cell(r) for r in [off] + on) + " |")
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
    out += site_lines(notes)
    out += target_lines(rows, notes, labels)
    return "\n".join(out)


def site_lines(notes):
    """Issue 30's scale figures: 1,000 sites × 50 pages; 100 sites against one, rounds in A-B-B-A order."""
    if ("sites", "ready_ms") not in notes:
        return []
    from sites import ROUNDS
    out = ["", "Sites (1,000 registered, 50 help pages each; the realistic mix, 64 connections, fast fake; every site of both mixes warmed for 10 s before the measured rounds):", "",
           "| measurement | result |", "|---|---|",
           f"| registering 1,000 sites with a key and 50 pages each (API) | {notes[('sites', 'register_s')]:.1f} s, "
           f"RSS then {notes[('sites', 'rss_loaded')]:.0f} MiB (every index open) |",
           f"| a fresh process on that registry: start to ready | {notes[('sites', 'ready_ms')]:.0f} ms, "
           f"idle RSS {notes[('sites', 'rss_idle')]:.1f} MiB (indexes load on first use) |",
           f"| a site's first message (its index opened) / its second | {notes[('sites', 'first_ms')]:.0f} ms / "
           f"{notes[('sites', 'second_ms')]:.0f} ms |",
           f"| RSS after the runs below (102 sites' indexes open) | {notes[('sites', 'rss_after')]:.1f} MiB |"]
    for route, path in (("compat", "/v1/chat/completions"), ("send", "/sendChatMessage")):
        one = [notes[("sites", "one", route, n)] for n in ROUNDS]
        spread = [notes[("sites", "spread", route, n)] for n in ROUNDS]
        mean = lambda runs: sum(r["rps"] for r in runs) / len(runs)  # noqa: E731
        cpu = lambda runs: f"{sum(r['cpu_us'] for r in runs) / len(runs):.0f}" if all(r.get("cpu_us") for r in runs) else "?"  # noqa: E731
        ratio = mean(spread) / mean(one)
        verdict = "met" if ratio >= 0.95 else "missed"
        errors = sum(r["errors"] for r in one + spread)
        out.append(f"| `{path}`: 100 sites vs one site ({len(one)} rounds in A-B-B-A order, means) | {mean(spread):,.0f} vs "
                   f"{mean(one):,.0f} req/s = **{ratio:.2f} ×** (target ≥ 0.95: {verdict}); p99 "
                   f"{ms(spread[0]['p99'])} / {ms(one[0]['p99'])} ms; CPU per request {cpu(spread)} / {cpu(one)} µs; per round "
                   + ", ".join(f"{s['rps'] / o['rps']:.2f}" for s, o in zip(spread, one)) + f"; {errors} errors |")
    return out
