#!/usr/bin/env python3
"""What hybrid search costs a visitor, and what an import with embeddings takes.

A fake model API on loopback answers chat completions at once and `/v1/embeddings` after a delay
(50 ms by default), or refuses it (down). velochat (the binary given) serves a knowledge base of
300 help pages built from the Debian FAQ; 300 different questions go through `/sendChatMessage`
one at a time, each from its own session, with embeddings off, on, and down. Reported: the p50 and
p90 latency of each mode and what hybrid adds to the p50. Then `velochat kb import` of 1,000
documents with the embeddings fake answering at once: its wall time and the progress it printed.

Usage: bench/kb_hybrid.py BINARY [--json OUT]
"""
import http.server, json, os, random, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import kb_quality  # noqa: E402
from kb_quality import ADMIN, faq_pairs, pct  # noqa: E402

MODE = {"embeddings": "slow", "delay": 0.05}


class FakeModelApi(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body):
        # One write for the head and the body: two small writes meet the client's delayed ACK
        # (40 ms per answer that would be the fake's, not velochat's).
        out = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} OK\r\ncontent-type: application/json\r\ncontent-length: {len(out)}\r\n\r\n"
        self.wfile.write(head.encode() + out)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        if self.path.endswith("/embeddings"):
            if MODE["embeddings"] == "down":
                return self.reply(503, {"error": {"message": "down", "type": "server_error"}})
            time.sleep(MODE["delay"])
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": vector(text)} for i, text in enumerate(inputs)]
            return self.reply(200, {"object": "list", "data": data, "model": body["model"]})
        content = json.dumps({"reply": "Here is what the help pages say.", "confidence": 0.9, "intent": "other", "needsHuman": False})
        self.reply(200, {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}})

    def log_message(self, *args):
        pass


def vector(text, dim=64):
    """A deterministic bag-of-words vector: cheap, so the fake's delay is the only cost."""
    v = [0.0] * dim
    for word in text.lower().split():
        v[hash(word) % dim] += 1.0
    return v


def start_fake():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeModelApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def start(binary, workdir, env_extra):
    # kb_quality's start, with the rate limits raised for 300 messages in a row.
    limits = {"VELOCHAT_LIMIT_SESSION_BURST": "1000", "VELOCHAT_LIMIT_IP_BURST": "100000",
              "VELOCHAT_LIMIT_IP_PER_MINUTE": "100000", "VELOCHAT_LOG_LEVEL": "error"}
    return kb_quality.start(binary, workdir, {**limits, **env_extra})


def post(url, body, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def chat_latencies(binary, fake, pages, questions, model):
    with tempfile.TemporaryDirectory() as work:
        proc, base = start(binary, work, {"OPENAI_API_KEY": "sk-bench-0123456789", "OPENAI_BASE_URL": fake,
                                          "VELOCHAT_KB_EMBEDDINGS_MODEL": model})
        try:
            saved = MODE["embeddings"]
            MODE["embeddings"] = "slow"
            MODE["delay"] = 0.0
            post(f"{base}/admin/kb/import", {"documents": pages}, ADMIN)
            MODE["embeddings"], MODE["delay"] = saved, 0.05
            latencies = []
            for i, question in enumerate(questions):
                started = time.perf_counter()
                reply = post(f"{base}/sendChatMessage", {"sessionId": f"bench-{model}-{i}", "userText": question})
                latencies.append((time.perf_counter() - started) * 1000)
                assert reply["source"] == "model", reply
            return latencies
        finally:
            proc.terminate(); proc.wait()


def main():
    binary = os.path.abspath(sys.argv[1])
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    fake = start_fake()
    pairs = faq_pairs()
    rng = random.Random(11)
    paragraphs = [p for _, _, answer in pairs for p in answer.split("\n\n") if len(p.split()) >= 8]
    pages = [{"id": f"faq-{n}", "title": f"Debian FAQ {n}", "body": answer} for n, _, answer in pairs]
    pages += [{"id": f"page-{i}", "title": " ".join(rng.choice(paragraphs).split()[:5]), "body": "\n\n".join(rng.sample(paragraphs, 2))}
              for i in range(300 - len(pages))]
    questions = [q for _, q, _ in pairs] + [" ".join(rng.sample(rng.choice(paragraphs).split(), 7)) + "?" for _ in range(154)]
    result = {"pages": len(pages), "questions": len(questions), "embeddings_delay_ms": 50}
    runs = {}
    for label, model, mode in [("off", "off", "slow"), ("hybrid, 50 ms embeddings", "bench-embed", "slow"),
                               ("hybrid, embeddings down", "bench-embed", "down")]:
        MODE["embeddings"] = mode
        runs[label] = chat_latencies(binary, fake, pages, questions, model)
    for label, latencies in runs.items():
        result[label] = {"p50_ms": round(pct(latencies, 50), 2), "p90_ms": round(pct(latencies, 90), 2)}
    off = result["off"]["p50_ms"]
    result["added_p50_ms"] = {label: round(result[label]["p50_ms"] - off, 2) for label in runs if label != "off"}
    # After its first failures the breaker is open: the rest of the run pays nothing for the outage.
    down = runs["hybrid, embeddings down"][10:]
    result["down_after_breaker_added_p50_ms"] = round(statistics.median(down) - off, 2)

    MODE["embeddings"], MODE["delay"] = "slow", 0.0
    documents = [{"id": f"doc-{i}", "title": " ".join(rng.choice(paragraphs).split()[:5]),
                  "body": "\n\n".join(rng.sample(paragraphs, 2))} for i in range(1000)]
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "docs.json")
        with open(path, "w") as f:
            json.dump({"documents": documents}, f)
        env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite://{work}/kb.db", "OPENAI_API_KEY": "sk-bench-0123456789",
               "OPENAI_BASE_URL": fake, "VELOCHAT_KB_EMBEDDINGS_MODEL": "bench-embed", "VELOCHAT_LOG_LEVEL": "error"}
        started = time.perf_counter()
        done = subprocess.run([binary, "kb", "import", path], env=env, cwd=work, capture_output=True, text=True, check=True)
        result["import_1000"] = {"seconds": round(time.perf_counter() - started, 2), "printed": done.stdout.strip(),
                                 "progress_lines": done.stderr.strip().splitlines()}
    kb_quality.report(result, out)


if __name__ == "__main__":
    main()
