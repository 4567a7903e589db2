"""The request bodies and wrk scripts the benchmark sends.

Two traffic mixes:
- "repeated": 256 sessions, each sending the same signed 3-turn history and the same question (the
  figure earlier rounds reported);
- "realistic": a new session every 5 messages and a different question on every request. The five
  questions of one session are clearly distinct (so the repeated-question rule never fires), each
  carries a unique order reference (so no remembered token count can carry the figure), and message k
  of a session sends the k earlier exchanges as history (assistant turns signed, as Velo sends them).
"""
import base64
import hashlib
import hmac
import json
import struct
from pathlib import Path

CALLER_KEY = "bench-caller-key"
SIGNING_KEY = "bench-signing-key"
SESSIONS = 256
# Sessions whose signatures are precomputed for the realistic mix; each wrk run starts at an offset
# given on its command line, so consecutive runs mostly open sessions velochat has not seen.
MIX_SESSIONS = 120_000

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
# Distinct enough that no two of one session look alike to the repeat detector (word-set Jaccard).
MIX_QUESTIONS = [
    "Where is my parcel right now and when will the courier deliver it?",
    "Can I exchange the hiking boots for a larger size without paying shipping again?",
    "Do you ship waterproof tents to Norway, and how long does customs take?",
    "My discount code SPRING20 was rejected at checkout, what went wrong?",
    "How do I wash the merino base layer so it does not shrink?",
    "Is the insulated parka warm enough for minus twenty degrees in Finland?",
    "I was charged twice for one sleeping bag, can you refund the duplicate payment?",
    "Which trekking poles fold small enough for carry-on luggage?",
]
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


DONE = ["done = function(summary, latency, requests)",
        '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,'
        '\\"timeout\\":%d,\\"status\\":%d,\\"p50\\":%d,\\"p99\\":%d,\\"p999\\":%d,\\"max\\":%d}\\n",',
        "    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,",
        "    summary.errors.timeout, summary.errors.status, latency:percentile(50), latency:percentile(99),",
        "    latency:percentile(99.9), latency.max))", "end"]


def repeated_script(work, name, path, compat):
    """A wrk script rotating through pre-built bodies; done() prints the figures as JSON."""
    bodies = [compat_body(i) if compat else send_body(i) for i in range(SESSIONS)]
    # wrk.format replaces wrk.headers with the table it is given, so every header goes in it.
    common = f'["Content-Type"] = "application/json", ["Authorization"] = "Bearer {CALLER_KEY}", ["X-Visitor-Id"] = "v-" .. i'
    session = ', ["X-Session-Id"] = "bench-" .. i' if compat else ""
    lines = ["bodies = {" + ",".join(lua_string(b) for b in bodies) + "}", "i = 0", 'wrk.method = "POST"',
             "request = function()", "  i = i % #bodies + 1",
             '  return wrk.format(nil, "%s", {%s%s}, bodies[i])' % (path, common, session), "end"]
    script = work / f"{name}.lua"
    script.write_text("\n".join(lines + DONE) + "\n")
    return script


def realistic_script(work, name, path, compat, sites=None):
    """New session every 5 messages, a different question each time (see the module text).
    `sites`: [(caller key, session-key prefix)]; session s belongs to site s mod len(sites), its
    signatures made for that site's session key (velochat binds them to it). None: `default`."""
    sites = sites or [(CALLER_KEY, "")]
    tag = "" if sites == [(CALLER_KEY, "")] else f"-{name}"
    sigs = work / f"mix-signatures{tag}.txt"
    if not sigs.exists():
        reply = REPLY["reply"]
        sigs.write_text("\n".join(sign(f"{sites[s % len(sites)][1]}mix-{s}", reply) for s in range(MIX_SESSIONS)) + "\n")
    questions = "{" + ",".join(lua_string(q) for q in MIX_QUESTIONS) + "}"
    keys = "{" + ",".join(lua_string(f"Bearer {key}") for key, _ in sites) + "}"
    lines = [
        f"questions = {questions}",
        f"keys = {keys}",
        f"reply = {lua_string(REPLY['reply'])}",
        f"system = {lua_string(json.dumps(SYSTEM_PROMPT))}",
        f"context = {lua_string(json.dumps(CONTEXT))}",
        "sigs = {}",
        f'for line in io.lines("{sigs}") do sigs[#sigs + 1] = line end',
        "n = 0", "offset = 0", 'wrk.method = "POST"',
        "init = function(args) offset = tonumber(args[1] or '0') end",
        # The question of message k of session s: distinct per k, unique per request by its reference.
        "function question(s, k, m) return questions[(s + k) % #questions + 1] .. ' My order reference is A-' .. (100000 + m) .. '.' end",
        "request = function()",
        "  local s = (offset + math.floor(n / 5)) % #sigs",
        "  local k = n % 5",
        "  local first = n - k",
        "  n = n + 1",
        "  local id = 'mix-' .. s",
        "  local key = keys[s % #keys + 1]",
        "  local turns = {}",
        "  for j = 0, k - 1 do",
    ]
    if compat:
        lines += [
            "    turns[#turns + 1] = '{\"role\":\"user\",\"content\":\"' .. question(s, j, first + j) .. '\"}'",
            "    turns[#turns + 1] = '{\"role\":\"assistant\",\"content\":\"' .. reply .. '\"}'",
            "  end",
            "  turns[#turns + 1] = '{\"role\":\"user\",\"content\":\"' .. question(s, k, first + k) .. '\"}'",
            "  local body = '{\"model\":\"gpt-4o-mini\",\"max_tokens\":300,\"messages\":[{\"role\":\"system\",\"content\":' .. system .. '},' .. table.concat(turns, ',') .. ']}'",
            f'  return wrk.format(nil, "{path}", {{["Content-Type"] = "application/json", ["Authorization"] = key, ["X-Session-Id"] = id}}, body)',
        ]
    else:
        lines += [
            "    turns[#turns + 1] = '{\"role\":\"user\",\"content\":\"' .. question(s, j, first + j) .. '\"}'",
            "    turns[#turns + 1] = '{\"role\":\"assistant\",\"content\":\"' .. reply .. '\",\"signature\":\"' .. sigs[s + 1] .. '\"}'",
            "  end",
            "  local body = '{\"sessionId\":\"' .. id .. '\",\"userText\":\"' .. question(s, k, first + k) .. '\",\"history\":[' .. table.concat(turns, ',') .. '],\"context\":' .. context .. '}'",
            f'  return wrk.format(nil, "{path}", {{["Content-Type"] = "application/json", ["Authorization"] = key, ["X-Visitor-Id"] = id}}, body)',
        ]
    lines += ["end"]
    script = work / f"{name}.lua"
    script.write_text("\n".join(lines + DONE) + "\n")
    return script


def scripts(work):
    """Every script by (mix, route)."""
    out = {}
    for mix, make in (("repeated", repeated_script), ("realistic", realistic_script)):
        out[(mix, "compat")] = make(work, f"{mix}-compat", "/v1/chat/completions", True)
        out[(mix, "send")] = make(work, f"{mix}-send", "/sendChatMessage", False)
    return out
