// A fake Anthropic Messages upstream for tests/Packaging/run.sh: answers every request with one fixed message and
// prints what it received (method, path, the credential, the model) as a `SEEN {json}` line; `LISTENING <port>`
// once it listens on 127.0.0.1 (port 0: any free port).
const http = require("http");
const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    let model = null;
    try { model = JSON.parse(body).model ?? null; } catch { /* not JSON: model stays null */ }
    const auth = req.headers["authorization"];
    const key = req.headers["x-api-key"] ?? (auth ? auth.replace(/^Bearer /, "") : null);
    console.log("SEEN " + JSON.stringify({ method: req.method, path: req.url, key, model }));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      id: "msg_fake_packaging", type: "message", role: "assistant", model,
      content: [{ type: "text", text: "hello from the fake upstream" }],
      stop_reason: "end_turn", stop_sequence: null, usage: { input_tokens: 3, output_tokens: 5 },
    }));
  });
});
server.listen(0, "127.0.0.1", () => console.log("LISTENING " + server.address().port));
process.on("SIGTERM", () => process.exit(0));
