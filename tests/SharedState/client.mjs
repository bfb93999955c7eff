// The round-robin client of tests/SharedState/run.sh (no dependencies):
//
//   node client.mjs load KEY COUNT CONCURRENCY URL...   sends COUNT POST /v1/messages with x-api-key KEY, each to the
//                                                       next relay in turn, CONCURRENCY at once; prints one JSON line:
//                                                       {"statuses": {"200": n, ...}, "errors": n, "max_ms": n}
//   node client.mjs steady KEY SECONDS RPS URL...       the same at RPS requests a second for SECONDS (round robin)
//
// Every request has a 10 s deadline; a request that cannot be sent or times out counts in "errors".
import http from "node:http";

const [mode, key, a, b, ...urls] = process.argv.slice(2);
const body = JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
const statuses = {};
let errors = 0;
let maxMs = 0;
let next = 0;

const send = () =>
  new Promise((resolve) => {
    const url = urls[next++ % urls.length];
    const started = process.hrtime.bigint();
    const req = http.request(`${url}/v1/messages`, {
      method: "POST",
      timeout: 10_000,
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": key },
    }, (res) => {
      res.resume();
      res.on("end", () => {
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        maxMs = Math.max(maxMs, Number(process.hrtime.bigint() - started) / 1e6);
        resolve();
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => { errors++; resolve(); });
    req.end(body);
  });

const report = () => console.log(JSON.stringify({ statuses, errors, max_ms: Math.round(maxMs) }));

if (mode === "load") {
  let left = Number(a);
  const worker = async () => { while (left-- > 0) await send(); };
  await Promise.all(Array.from({ length: Number(b) }, worker));
  report();
} else if (mode === "steady") {
  const inFlight = [];
  const timer = setInterval(() => inFlight.push(send()), 1000 / Number(b));
  await new Promise((r) => setTimeout(r, Number(a) * 1000));
  clearInterval(timer);
  await Promise.all(inFlight);
  report();
} else {
  console.error("usage: node client.mjs load KEY COUNT CONCURRENCY URL... | steady KEY SECONDS RPS URL...");
  process.exit(2);
}
