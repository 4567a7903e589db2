"""The sites scenario (issue 30's scale figures): 1,000 sites registered with 50 help pages each (the
same 50 for every site, so two runs differ only in how many sites the traffic is spread over),
then start-up time and RSS of a fresh process on that registry, and the realistic mix spread over 100
sites against the same mix on one site, both routes, alternated, in the same run."""
import json
import time
import urllib.request

ADMIN = "bench-sites-operator"
SITE_COUNT = 1000
DOCS_PER_SITE = 50
SPREAD = 100
ROUNDS = (1, 2, 3, 4)


def call(port, method, path, body=None, site=None):
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    if site:
        headers["X-Velochat-Site"] = site
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    return json.loads(urllib.request.urlopen(request, timeout=300).read() or b"null")


def register(port):
    """1,000 sites, a caller key each, 50 pages each (one import per site); returns
    [(site id, caller key, session-key prefix)] and the seconds it took."""
    from kb_corpus import documents
    # The same 50 pages for every site: the comparison below then differs in the number of sites
    # only, not in what each site's pages put in the prompt.
    pages = documents(count=DOCS_PER_SITE, seed=30)
    started = time.perf_counter()
    sites = []
    for n in range(SITE_COUNT):
        site = f"site-{n:04d}"
        made = call(port, "PUT", f"/admin/sites/{site}", {"name": f"Client {n}"})
        key = call(port, "POST", f"/admin/sites/{site}/keys", {"role": "caller"})["key"]
        # createdAt has millisecond precision: the session-key prefix velochat signs history with.
        created_ms = iso_ms(made["createdAt"])
        docs = [dict(page, id=f"page-{i}") for i, page in enumerate(pages)]
        call(port, "POST", "/admin/kb/import", {"documents": docs}, site=site)
        sites.append((site, key, f"{site}.{created_ms}/"))
    return sites, time.perf_counter() - started


def first_use(port, site):
    """Milliseconds for a site's first message (its index not open yet) and its second."""
    _, key, _ = site
    timings = []
    for n in range(2):
        body = json.dumps({"sessionId": f"first-use-{n}", "userText": "How long does delivery to Norway take?"}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/sendChatMessage", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        started = time.perf_counter()
        urllib.request.urlopen(request, timeout=30).read()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def iso_ms(text):
    from datetime import datetime
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def measure_sites(ctx, notes):
    """ctx: the harness's Velochat, PORTS, wrk, realistic_script, WORK."""
    Velochat, PORTS, wrk, realistic_script, WORK = ctx
    extra = {"VELOCHAT_ADMIN_KEY": ADMIN, "VELOCHAT_API_KEYS": ""}
    vc = Velochat(PORTS["fast"], extra, name="velochat-sites")
    try:
        sites, seconds = register(PORTS["velochat"])
        notes[("sites", "register_s")] = seconds
        notes[("sites", "rss_loaded")] = vc.rss()
    finally:
        vc.stop()
    # A fresh process on the registry: indexes load on first use, so start-up reads sites and keys only.
    vc = Velochat(PORTS["fast"], extra, name="velochat-sites")
    try:
        notes[("sites", "ready_ms")] = vc.ready_ms
        notes[("sites", "rss_idle")] = vc.rss()
        spread = [(key, prefix) for _, key, prefix in sites[:SPREAD]]
        one = [(sites[SPREAD][1], sites[SPREAD][2])]
        scripts = {}
        for label, chosen in (("one", one), ("spread", spread)):
            for route, path, compat in (("compat", "/v1/chat/completions", True), ("send", "/sendChatMessage", False)):
                scripts[(label, route)] = realistic_script(WORK, f"sites-{label}-{route}", path, compat, sites=chosen)
        # What a site's first message costs (its index opened and read from the store), then the same
        # for a second message: measured on sites the traffic below never uses.
        notes[("sites", "first_ms")], notes[("sites", "second_ms")] = first_use(PORTS["velochat"], sites[-1])
        # Steady state: every site of both mixes opened and warm before anything is measured (the
        # first-use cost above is per site and process, not per message).
        for label in ("spread", "one"):
            for route in ("compat", "send"):
                wrk(PORTS["velochat"], scripts[(label, route)], 64, duration=10, pid=vc.proc.pid)
        # Four rounds in A-B-B-A order (one/spread, spread/one, ...): drift on this machine, and
        # whatever grows as the run goes on (stored sessions, the event log), falls on both alike.
        for round_ in ROUNDS:
            for route in ("compat", "send"):
                for label in ("one", "spread") if round_ % 2 else ("spread", "one"):
                    r = wrk(PORTS["velochat"], scripts[(label, route)], 64, pid=vc.proc.pid)
                    notes[("sites", label, route, round_)] = r
        notes[("sites", "rss_after")] = vc.rss()
    finally:
        vc.stop()
