#!/usr/bin/env python3
"""Fast-client latency at the relay with and without 1,000 slow clients (slowloris: headers a byte at a time).

Run by bench/slow-clients.sh (which starts the fake upstream and the relay); usable alone:
    python3 bench/slow_clients.py --port 8787 [--slow 1000] [--phase-s 30] [--deadline-s 240]

Each fast request opens a new connection (what a starved accept loop or thread pool would delay), sends one
non-streaming POST /v1/messages with Connection: close and reads the answer to the end; latency is from connect to
the last byte. Slow clients send a request line and then one header byte per second; when the relay cuts one
(server.limits.request_headers_timeout_ms), it reconnects at once, so the full number stays open throughout.
Three phases of --phase-s seconds each (fast requests back to back): alone, with the slow clients, alone again (the
machine is shared: the second "alone" shows the drift). A phase longer than the relay's header timeout (10 s by
default) includes the cutting and reconnecting of every slow client. Everything is bounded by --deadline-s; prints a
Markdown table.
"""
import argparse
import asyncio
import json
import statistics
import sys
import time


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


async def fast_request(port, body):
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "anthropic-version: 2023-06-01\r\nx-api-key: bench-client-key\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    elapsed = (time.perf_counter() - started) * 1000.0
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return elapsed, status


async def measure(port, body, seconds):
    latencies, failures = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            elapsed, status = await asyncio.wait_for(fast_request(port, body), 30)
            if status == 200:
                latencies.append(elapsed)
            else:
                failures += 1
        except (OSError, asyncio.TimeoutError):
            failures += 1
    return latencies, failures


class SlowClients:
    def __init__(self, port, count):
        self.port, self.count = port, count
        self.open = 0
        self.cut = 0
        self.stop = asyncio.Event()

    async def one(self):
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.open += 1
            try:
                writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                await writer.drain()
                while not self.stop.is_set():
                    try:
                        # a read that ends means the relay cut the connection
                        data = await asyncio.wait_for(reader.read(4096), 1.0)
                        if not data or b"408" in data:
                            self.cut += 1
                            break
                    except asyncio.TimeoutError:
                        writer.write(b"a")
                        await writer.drain()
            except OSError:
                self.cut += 1
            finally:
                self.open -= 1
                writer.close()

    def start(self):
        return [asyncio.create_task(self.one()) for _ in range(self.count)]


def row(label, latencies, failures, extra=""):
    if not latencies:
        return f"| {label} | 0 | {failures} | - | - | - | - | - |{extra}"
    return (
        f"| {label} | {len(latencies)} | {failures} | {percentile(latencies, 50):.1f} | {percentile(latencies, 95):.1f} "
        f"| {percentile(latencies, 99):.1f} | {max(latencies):.1f} | {statistics.mean(latencies):.1f} |{extra}"
    )


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--phase-s", type=float, default=30.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--deadline-s", type=float, default=240.0)
    args = parser.parse_args()
    body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def run():
        await measure(args.port, body, 2)  # warm-up
        base, base_failed = await measure(args.port, body, args.phase_s)
        slow = SlowClients(args.port, args.slow)
        tasks = slow.start()
        await asyncio.sleep(args.settle_s)
        opened = slow.open
        loaded, loaded_failed = await measure(args.port, body, args.phase_s)
        still_open = slow.open
        slow.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        after, after_failed = await measure(args.port, body, args.phase_s)
        return base, base_failed, loaded, loaded_failed, after, after_failed, opened, still_open, slow.cut

    base, base_failed, loaded, loaded_failed, after, after_failed, opened, still_open, cut = await asyncio.wait_for(run(), args.deadline_s)
    print("| fast client | answered | failed | p50 ms | p95 ms | p99 ms | max ms | mean ms |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("alone", base, base_failed))
    print(row(f"with {args.slow} slow clients", loaded, loaded_failed))
    print(row("alone again", after, after_failed))
    print()
    print(f"slow clients open when measuring started: {opened}; at its end: {still_open}; connections the relay cut during the run: {cut}")
    alone = base + after
    if alone and loaded:
        print(f"p50 ratio (with ÷ both alone phases): {percentile(loaded, 50) / percentile(alone, 50):.2f}; p99 ratio: {percentile(loaded, 99) / percentile(alone, 99):.2f}")
    return 0 if not loaded_failed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
