#!/usr/bin/python3
"""Raw HTTP checks of the daemon's API with urllib and sockets: bad input gets Ollama's or
OpenAI's status codes and error shapes, and the daemon keeps serving others meanwhile.

usage: http_raw_checks.py URL MODEL [TOKEN_URL TOKEN]
"""
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

url, model = sys.argv[1], sys.argv[2]
token_url, token = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else (None, None)
failures = []


def request(path, body=None, raw=None, method=None, headers=None, base=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request((base or url) + path, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}")


def ollama_error(name, status, body, want):
    try:
        j = json.loads(body)
    except ValueError:
        j = None
    check(name, status == want and isinstance(j, dict) and isinstance(j.get("error"), str) and set(j) == {"error"},
          f"status {status} body {body[:300]}")


def openai_error(name, status, body, want, param=None):
    try:
        e = json.loads(body)["error"]
        shape = set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str) and isinstance(e["type"], str)
    except (ValueError, KeyError, TypeError):
        e, shape = None, False
    check(name, status == want and shape and (param is None or e["param"] == param), f"status {status} body {body[:300]}")


chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False, "options": {"num_predict": 2}}
oa = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

# Invalid JSON, not an object, empty body.
for path in ("/api/chat", "/api/generate", "/api/show", "/api/pull"):
    ollama_error(f"{path} invalid json", *request(path, raw=b"{nope")[:2], 400)
ollama_error("/api/chat empty body", *request("/api/chat", raw=b"")[:2], 400)
ollama_error("/api/chat array body", *request("/api/chat", raw=b"[1,2]")[:2], 400)
for path in ("/v1/chat/completions", "/v1/completions"):
    openai_error(f"{path} invalid json", *request(path, raw=b"{nope")[:2], 400)
    openai_error(f"{path} empty body", *request(path, raw=b"")[:2], 400)

# Missing fields.
ollama_error("/api/chat no model", *request("/api/chat", {"messages": []})[:2], 400)
ollama_error("/api/generate no model", *request("/api/generate", {"prompt": "x"})[:2], 400)
openai_error("chat no model", *request("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})[:2], 400, "model")
openai_error("chat no messages", *request("/v1/chat/completions", {"model": model})[:2], 400, "messages")
openai_error("completions no prompt", *request("/v1/completions", {"model": model})[:2], 400, "prompt")
openai_error("message without role", *request("/v1/chat/completions", {"model": model, "messages": [{"content": "x"}]})[:2], 400)

# Wrong types.
ollama_error("messages not an array", *request("/api/chat", {"model": model, "messages": "hi"})[:2], 400)
ollama_error("temperature a string", *request("/api/chat", dict(chat, options={"temperature": "hot"}))[:2], 400)
ollama_error("num_predict a string", *request("/api/generate", {"model": model, "prompt": "x", "options": {"num_predict": "9"}})[:2], 400)
ollama_error("stream a string", *request("/api/chat", dict(chat, stream="no"))[:2], 400)
ollama_error("format a number", *request("/api/chat", dict(chat, format=5))[:2], 400)
openai_error("temperature a string", *request("/v1/chat/completions", dict(oa, temperature="hot"))[:2], 400, "temperature")
openai_error("temperature out of range", *request("/v1/chat/completions", dict(oa, temperature=5))[:2], 400, "temperature")
openai_error("max_tokens a string", *request("/v1/chat/completions", dict(oa, max_tokens="2"))[:2], 400, "max_tokens")
openai_error("content a number", *request("/v1/chat/completions", dict(oa, messages=[{"role": "user", "content": 5}]))[:2], 400)
openai_error("n = 2", *request("/v1/chat/completions", dict(oa, n=2))[:2], 400, "n")
openai_error("bad response_format", *request("/v1/chat/completions", dict(oa, response_format={"type": "yaml"}))[:2], 400)
openai_error("json_schema without schema", *request("/v1/chat/completions", dict(oa, response_format={"type": "json_schema"}))[:2], 400)
openai_error("invalid schema", *request("/v1/chat/completions", dict(oa, response_format={"type": "json_schema", "json_schema": {"schema": {"type": "nonsense"}}}))[:2], 400)

# Unknown model, unknown route, embeddings.
ollama_error("unknown model", *request("/api/chat", dict(chat, model="llama9:70b"))[:2], 404)
ollama_error("show unknown model", *request("/api/show", {"model": "llama9:70b"})[:2], 404)
ollama_error("pull unknown model", *request("/api/pull", {"model": "no-such-model-anywhere", "stream": False})[:2], 404)
openai_error("unknown model", *request("/v1/chat/completions", dict(oa, model="gpt-4o"))[:2], 404, "model")
openai_error("unknown route", *request("/v1/nothing")[:2], 404)
ollama_error("unknown route", *request("/api/nothing")[:2], 404)
ollama_error("embed", *request("/api/embed", {"model": model, "input": "x"})[:2], 501)

# A prompt longer than a slot: 400, not a dead daemon.
ollama_error("prompt too long", *request("/api/generate", {"model": model, "prompt": "word " * 5000, "stream": False})[:2], 400)

# Huge bodies: 413 in each shape.
huge = b'{"model":"' + b"x" * (9 << 20) + b'"}'
ollama_error("huge body", *request("/api/chat", raw=huge)[:2], 413)
openai_error("huge body", *request("/v1/chat/completions", raw=huge)[:2], 413)

# Good requests still work, with the right fields.
status, body, _ = request("/api/chat", chat)
check("chat after bad input", status == 200 and json.loads(body)["done"] is True, body[:200])
status, body, _ = request("/health")
check("health", status == 200 and json.loads(body)["status"] == "ok", body)
status, body, headers = request("/metrics")
check("metrics", status == 200 and "cortex_http_requests_total{endpoint=\"/api/chat\",status=\"400\"}" in body
      and "cortex_slots_active" in body and "cortex_kv_cache_cells_used" in body, body[:400])
check("no CORS by default", "Access-Control-Allow-Origin" not in request("/api/tags", headers={"Origin": "http://evil.example"})[2])

# Slow clients: one sends headers and then nothing, one sends half a request line. Others are
# served meanwhile, in the usual time.
slow = []
for head in (b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{", b"POST /api/ch"):
    s = socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])))
    s.sendall(head)
    slow.append(s)
t0 = time.time()
threads = []
results = []
for _ in range(4):
    th = threading.Thread(target=lambda: results.append(request("/api/chat", chat)[0]))
    th.start()
    threads.append(th)
for th in threads:
    th.join()
check("served beside slow clients", results == [200] * 4 and time.time() - t0 < 5, f"{results} in {time.time() - t0:.1f} s")
for s in slow:
    s.settimeout(30)
    try:
        data = s.recv(4096)  # the daemon gives up on them: an error answer or a closed connection
    except OSError:
        data = b""
    check("slow client dropped", data == b"" or data.startswith(b"HTTP/1.1 4"), data[:80])
    s.close()

# Many short connections: the daemon keeps serving.
for i in range(50):
    if request("/api/version")[0] != 200:
        check("short connections", False, f"failed at {i}")
        break

# A client that leaves a non-streamed request frees its slot at once, not when the generation
# would have ended (greedy on random weights: no end-of-generation token for 1,500 tokens).
def slots_active():
    for line in request("/metrics")[1].splitlines():
        if line.startswith("cortex_slots_active "):
            return float(line.split()[1])
    return -1.0


long_body = json.dumps({"model": model, "prompt": "Tell a very long story", "stream": False,
                        "options": {"num_predict": 1500, "temperature": 0}}).encode()
leaver = socket.create_connection((url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1])))
leaver.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
               + str(len(long_body)).encode() + b"\r\n\r\n" + long_body)
deadline = time.time() + 10
while slots_active() < 1 and time.time() < deadline:
    time.sleep(0.05)
check("non-streamed request generating", slots_active() >= 1, "never started")
time.sleep(0.3)
leaver.close()
t0 = time.time()
# The watch polls every 100 ms; the rest of the 1,500 tokens would take seconds.
while slots_active() > 0 and time.time() - t0 < 1.5:
    time.sleep(0.05)
check("client leaving a non-streamed request cancels it", slots_active() == 0,
      f"{slots_active()} slot(s) still generating {time.time() - t0:.1f} s after the client left")

if token_url:
    ollama_error("no token", *request("/api/tags", base=token_url)[:2], 401)
    openai_error("wrong token", *request("/v1/models", base=token_url, headers={"Authorization": "Bearer nope"})[:2], 401)
    status, _, _ = request("/api/tags", base=token_url, headers={"Authorization": "Bearer " + token})
    check("right token", status == 200, status)
    status, _, _ = request("/health", base=token_url)
    check("health needs no token", status == 200, status)
    _, _, headers = request("/api/tags", base=token_url, headers={"Authorization": "Bearer " + token, "Origin": "http://app.example"})
    check("CORS origin", headers.get("Access-Control-Allow-Origin") == "http://app.example", headers)

print(f"http_raw_checks: {len(failures)} failures")
sys.exit(1 if failures else 0)
