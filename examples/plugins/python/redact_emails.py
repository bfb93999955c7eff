#!/usr/bin/env python3
"""A cc-relay plugin (docs/plugins.md): replaces e-mail addresses with [email] in the text the user sends
(kind "request", protocol v1) and, when the plugin is also placed under a pipeline's response: with
sees: [request, response, event], in the text of the answers that come back (kind "response": a whole JSON
answer; kind "event": each SSE event of a streamed answer; protocol v2).

One JSON line in per call, one JSON line out, answering with the call's own v and id:
  in : {"v":1,"id":N,"kind":"request","provider":"…","model":"…","body":{…Messages request…}}
       {"v":2,"id":N,"kind":"response","provider":"…","model":"…","status":200,"body":{…Messages answer…}}
       {"v":2,"id":N,"kind":"event","provider":"…","model":"…","stream":"…","seq":K,"event":"content_block_delta","data":{…}}
  out: {"v":V,"id":N,"body":{…}} (an event: {"v":2,"id":N,"data":{…}})
       or {"v":V,"id":N,"unchanged":true}  or  {"v":V,"id":N,"error":"…"}
stdout carries protocol lines only; write logs to stderr.

A streamed address split across two text deltas is not caught (each event is seen on its own); a plugin that
must see whole words keeps per-stream state keyed by "stream".
"""
import json
import re
import sys

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
REPLACEMENT = "[email]"


def redact_content(content):
    """Returns (new content, how many addresses were replaced)."""
    if isinstance(content, str):
        new, n = EMAIL.subn(REPLACEMENT, content)
        return new, n
    if isinstance(content, list):
        total = 0
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                block["text"], n = EMAIL.subn(REPLACEMENT, block["text"])
                total += n
        return content, total
    return content, 0


def handle_request(call):
    body = call["body"]
    total = 0
    for message in body.get("messages", []):
        if message.get("role") == "user":
            message["content"], n = redact_content(message.get("content"))
            total += n
    return ("body", body) if total else None


def handle_response(call):
    body = call["body"]
    body["content"], n = redact_content(body.get("content"))
    return ("body", body) if n else None


def handle_event(call):
    data = call["data"]
    delta = data.get("delta") if call["event"] == "content_block_delta" else None
    if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
        delta["text"], n = EMAIL.subn(REPLACEMENT, delta["text"])
        if n:
            return ("data", data)
    return None


HANDLERS = {(1, "request"): handle_request, (2, "response"): handle_response, (2, "event"): handle_event}


def answer(call):
    version, ident = call.get("v"), call.get("id")
    handler = HANDLERS.get((version, call.get("kind")))
    if handler is None:
        return {"v": version, "id": ident, "error": "unsupported protocol version or kind"}
    try:
        change = handler(call)
    except Exception as e:  # a plugin reports its own failure; the relay applies on_error
        return {"v": version, "id": ident, "error": f"{type(e).__name__}: {e}"}
    if change is None:
        return {"v": version, "id": ident, "unchanged": True}
    member, value = change
    return {"v": version, "id": ident, member: value}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            call = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"redact_emails: bad line: {e}", file=sys.stderr)
            continue
        sys.stdout.write(json.dumps(answer(call), ensure_ascii=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
