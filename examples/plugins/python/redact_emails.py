#!/usr/bin/env python3
"""A cc-relay plugin (protocol v1, docs/plugins.md): replaces e-mail addresses in the text the user sends
with [email], so they never reach the provider.

One JSON line in per request, one JSON line out:
  in : {"v":1,"id":N,"kind":"request","provider":"…","model":"…","body":{…Anthropic Messages request…}}
  out: {"v":1,"id":N,"body":{…}}  or  {"v":1,"id":N,"unchanged":true}  or  {"v":1,"id":N,"error":"…"}
stdout carries protocol lines only; write logs to stderr.
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


def handle(request):
    body = request["body"]
    total = 0
    for message in body.get("messages", []):
        if message.get("role") == "user":
            message["content"], n = redact_content(message.get("content"))
            total += n
    if total == 0:
        return {"v": 1, "id": request["id"], "unchanged": True}
    return {"v": 1, "id": request["id"], "body": body}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"redact_emails: bad line: {e}", file=sys.stderr)
            continue
        if request.get("v") != 1:
            answer = {"v": 1, "id": request.get("id"), "error": "unsupported protocol version"}
        else:
            try:
                answer = handle(request)
            except Exception as e:  # a plugin reports its own failure; the relay applies on_error
                answer = {"v": 1, "id": request.get("id"), "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
