#!/usr/bin/env python3
"""Retrieval quality and knowledge-base performance, on text nobody here wrote: the Debian FAQ.

Each answer section of the FAQ's HTML chapters becomes a document (its body the answer text, its
heading removed; its title a neutral "Debian FAQ n.n"); each heading (the question) is a query.
recall@1/3/5 and MRR through GET /admin/kb/search, beside a plain BM25 baseline (rank-bm25's
BM25Okapi on lower-cased word tokens) on the same pairs in the same run. Then, on 10,000 documents
built from the FAQ's paragraphs: import time, query latency at that size, and RSS.

Hybrid mode (`--hybrid`): a local stand-in for OpenAI's `/v1/embeddings` runs a real small model,
WordLlama (its PyPI wheel ships the 256-dimension weights; loaded with downloads disabled), and
velochat is measured with keywords only, hybrid with reciprocal-rank fusion and hybrid with the
convex combination, beside rank-bm25, in one run. `KB_BENCH_WEIGHTS=0.3,0.5,0.7` also measures
those semantic weights (how the default was chosen). The stand-in is a floor: text-embedding-3-small
is far stronger.

Usage: bench/kb_quality.py BINARY [--json OUT] [--quality-only] [--hybrid]
Needs: python3 -m venv target/kb-bench-venv && target/kb-bench-venv/bin/pip install -r bench/requirements.txt
"""
import http.server, json, os, random, re, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.parse, urllib.request

from rank_bm25 import BM25Okapi

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faq import faq_pairs  # noqa: E402

ADMIN = "kb-bench-admin"


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as response:
        return json.loads(response.read() or b"null")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, workdir, extra=None):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "VELOCHAT_ADDR": f"127.0.0.1:{port}", "VELOCHAT_ADMIN_KEY": ADMIN,
           "DATABASE_URL": f"sqlite://{workdir}/kb.db", "VELOCHAT_LOG_LEVEL": "warn"}
    # Settings to compare (VELOCHAT__KB__CHUNK_TOKENS=500 ...) pass through.
    env.update({k: v for k, v in os.environ.items() if k.startswith("VELOCHAT__")})
    env.update(extra or {})
    proc = subprocess.Popen([binary], env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return proc, base
        except OSError:
            time.sleep(0.05)
    raise SystemExit("velochat did not start")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def scores(ranks):
    n = len(ranks)
    return {"recall@1": sum(r == 1 for r in ranks) / n, "recall@3": sum(0 < r <= 3 for r in ranks) / n,
            "recall@5": sum(0 < r <= 5 for r in ranks) / n, "mrr": sum(1 / r for r in ranks if r) / n}


def velochat_ranks(base, pairs):
    ranks, latencies = [], []
    for number, question, _ in pairs:
        started = time.perf_counter()
        results = request("GET", f"{base}/admin/kb/search?" + urllib.parse.urlencode({"q": question, "k": 5}))["results"]
        latencies.append((time.perf_counter() - started) * 1000)
        ids = [r["id"] for r in results]
        ranks.append(ids.index(f"faq-{number}") + 1 if f"faq-{number}" in ids else 0)
    return ranks, latencies


def baseline_ranks(pairs):
    tokens = lambda text: re.findall(r"\w+", text.lower())
    bm25 = BM25Okapi([tokens(answer) for _, _, answer in pairs])
    ranks = []
    for i, (_, question, _) in enumerate(pairs):
        scored = bm25.get_scores(tokens(question))
        order = sorted(range(len(pairs)), key=lambda j: -scored[j])[:5]
        ranks.append(order.index(i) + 1 if i in order else 0)
    return ranks


class EmbeddingsStandIn(http.server.BaseHTTPRequestHandler):
    """OpenAI's `POST /v1/embeddings` answered by WordLlama on this machine."""

    model = None
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors = self.model.embed(inputs, norm=True)
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        out = json.dumps({"object": "list", "data": data, "model": body.get("model"),
                          "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def embeddings_stand_in():
    """Starts the stand-in; returns its /v1 base URL."""
    import pathlib, wordllama
    from wordllama import WordLlama
    EmbeddingsStandIn.model = WordLlama.load(cache_dir=pathlib.Path(wordllama.__file__).parent, disable_download=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingsStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def measure(binary, documents, pairs, extra):
    with tempfile.TemporaryDirectory() as work:
        proc, base = start(binary, work, extra)
        try:
            request("POST", f"{base}/admin/kb/import", {"documents": documents})
            ranks, latencies = velochat_ranks(base, pairs)
            return {**scores(ranks), "query_ms_p50": round(pct(latencies, 50), 2)}
        finally:
            proc.terminate(); proc.wait()


def hybrid(binary, documents, pairs, result):
    url = embeddings_stand_in()
    common = {"OPENAI_API_KEY": "sk-bench-stand-in-0123456789", "OPENAI_BASE_URL": url,
              "VELOCHAT_KB_EMBEDDINGS_MODEL": "wordllama-256", "VELOCHAT__KB__EMBEDDINGS_TIMEOUT_MS": "5000"}
    result["velochat keywords"] = measure(binary, documents, pairs, {"VELOCHAT_KB_EMBEDDINGS_MODEL": "off"})
    result["velochat hybrid, rrf"] = measure(binary, documents, pairs, {**common, "VELOCHAT__KB__FUSION": "rrf"})
    result["velochat hybrid, convex (default weight)"] = measure(binary, documents, pairs, {**common, "VELOCHAT__KB__FUSION": "convex"})
    for weight in filter(None, os.environ.get("KB_BENCH_WEIGHTS", "").split(",")):
        result[f"velochat hybrid, convex {weight}"] = measure(
            binary, documents, pairs, {**common, "VELOCHAT__KB__FUSION": "convex", "VELOCHAT__KB__SEMANTIC_WEIGHT": weight})


def report(result, out):
    """Prints the result, and writes it to `out` when given (`--json OUT`)."""
    print(json.dumps(result, indent=2))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * len(values) + 0.5)) - 1)]


def main():
    binary = os.path.abspath(sys.argv[1])
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    pairs = faq_pairs()
    documents = [{"id": f"faq-{n}", "title": f"Debian FAQ {n}", "body": answer} for n, _, answer in pairs]
    result = {"pairs": len(pairs), "baseline": scores(baseline_ranks(pairs))}
    if "--hybrid" in sys.argv:
        hybrid(binary, documents, pairs, result)
        report(result, out)
        return
    thresholds = os.environ.get("KB_BENCH_MIN_SCORES", "default,0").split(",")
    for min_score in thresholds:
        label = "velochat, kb.min_score " + ("default" if min_score == "default" else min_score)
        with tempfile.TemporaryDirectory() as work:
            proc, base = start(binary, work, None if min_score == "default" else {"VELOCHAT__KB__MIN_SCORE": min_score})
            try:
                request("POST", f"{base}/admin/kb/import", {"documents": documents})
                ranks, _ = velochat_ranks(base, pairs)
                result[label] = scores(ranks)
            finally:
                proc.terminate(); proc.wait()

    if "--quality-only" in sys.argv:
        print(json.dumps(result, indent=2))
        return
    # 10,000 documents from the FAQ's paragraphs, shuffled into new combinations (fixed seed).
    rng = random.Random(7)
    paragraphs = [p for _, _, answer in pairs for p in answer.split("\n\n") if len(p.split()) >= 8]
    big = [{"id": f"d{i}", "title": " ".join(rng.choice(paragraphs).split()[:6]),
            "body": "\n\n".join(rng.sample(paragraphs, 3))} for i in range(10_000)]
    queries = [q for _, q, _ in pairs] + [" ".join(rng.sample(rng.choice(paragraphs).split(), 6)) for _ in range(800)]
    with tempfile.TemporaryDirectory() as work:
        proc, base = start(binary, work)
        try:
            time.sleep(0.5)
            idle = rss_mib(proc.pid)
            started = time.perf_counter()
            for i in range(0, len(big), 5000):
                request("POST", f"{base}/admin/kb/import", {"documents": big[i:i + 5000]})
            import_s = time.perf_counter() - started
            metrics = urllib.request.urlopen(urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"})).read().decode()
            chunks = int(float(re.search(r"^velochat_kb_chunks (\S+)", metrics, re.M).group(1)))
            latencies = []
            for q in queries:
                t = time.perf_counter()
                request("GET", f"{base}/admin/kb/search?" + urllib.parse.urlencode({"q": q, "k": 5}))
                latencies.append((time.perf_counter() - t) * 1000)
            result["scale"] = {"documents": len(big), "chunks": chunks, "import_seconds": round(import_s, 2),
                               "queries": len(queries), "query_ms_p50": round(pct(latencies, 50), 3),
                               "query_ms_p99": round(pct(latencies, 99), 3), "rss_idle_mib": round(idle, 1),
                               "rss_with_index_mib": round(rss_mib(proc.pid), 1)}
        finally:
            proc.terminate(); proc.wait()
    report(result, out)


if __name__ == "__main__":
    main()
