// Fakes for tests/Tui/run.sh (no dependencies):
//
//   node fakes.mjs upstreams PORTFILE NAME...   one fake Anthropic Messages upstream per NAME on 127.0.0.1 (any free
//                                               port); writes "NAME PORT" lines to PORTFILE once all listen, and a
//                                               control server's port as "control PORT". Control (HTTP on loopback):
//                                                 POST /NAME/fail   the upstream answers 529 overloaded from now on
//                                                 POST /NAME/heal   it answers 200 again
//                                                 GET  /NAME/count  requests it has received (its /v1/messages only)
//   node fakes.mjs traffic URL RPS SECONDS      POSTs /v1/messages to the relay at URL, RPS a second, for SECONDS,
//                                               then exits; prints nothing unless a request cannot be sent at all.
import http from "node:http";

const [mode, ...args] = process.argv.slice(2);
const stopAfter = (ms) => setTimeout(() => process.exit(0), ms).unref();

if (mode === "upstreams") {
  const [portFile, ...names] = args;
  const fs = await import("node:fs");
  const state = Object.fromEntries(names.map((n) => [n, { failing: false, count: 0 }]));
  const listen = (server) => new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
  const lines = [];
  for (const name of names) {
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        if (!req.url.startsWith("/v1/messages")) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ data: [{ id: "fake-model", type: "model" }] }));
          return;
        }
        state[name].count++;
        if (state[name].failing) {
          res.writeHead(529, { "content-type": "application/json" });
          res.end(JSON.stringify({ type: "error", error: { type: "overloaded_error", message: `${name} is overloaded` } }));
          return;
        }
        let model = "fake-model";
        try { model = JSON.parse(body).model ?? model; } catch { /* not JSON */ }
        // 20-80 ms, so the latency columns show something
        setTimeout(() => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({
            id: `msg_${name}_${state[name].count}`, type: "message", role: "assistant", model,
            content: [{ type: "text", text: `hello from ${name}` }],
            stop_reason: "end_turn", stop_sequence: null, usage: { input_tokens: 120, output_tokens: 30 },
          }));
        }, 20 + Math.floor(Math.random() * 60));
      });
    });
    lines.push(`${name} ${await listen(server)}`);
  }
  const control = http.createServer((req, res) => {
    const [, name, verb] = req.url.split("/");
    if (!state[name]) { res.writeHead(404); res.end(); return; }
    if (verb === "fail" || verb === "heal") state[name].failing = verb === "fail";
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(String(state[name].count));
  });
  lines.push(`control ${await listen(control)}`);
  fs.writeFileSync(portFile + ".tmp", lines.join("\n") + "\n");
  fs.renameSync(portFile + ".tmp", portFile);
  process.on("SIGTERM", () => process.exit(0));
  stopAfter(15 * 60 * 1000); // bounded: never outlives a hung test by long
} else if (mode === "traffic") {
  const [url, rps, seconds] = args;
  const body = JSON.stringify({ model: "claude-sonnet-4-5", max_tokens: 16, messages: [{ role: "user", content: "hi" }] });
  const send = () => {
    const req = http.request(`${url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "client-key" },
    }, (res) => res.resume());
    req.on("error", (e) => console.error(`traffic: ${e.message}`));
    req.end(body);
  };
  const timer = setInterval(send, 1000 / Number(rps));
  setTimeout(() => { clearInterval(timer); setTimeout(() => process.exit(0), 2000); }, Number(seconds) * 1000);
  process.on("SIGTERM", () => process.exit(0));
} else {
  console.error("usage: node fakes.mjs upstreams PORTFILE NAME... | traffic URL RPS SECONDS");
  process.exit(2);
}
