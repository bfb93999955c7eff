// Startup and idle memory of relay builds, side by side (bench/startup.sh runs it).
//
//   node bench/startup.mjs --runs N --out FILE NAME=COMMAND [NAME=COMMAND ...]
//
// COMMAND is split on spaces and run with `serve --config <yaml> --listen 127.0.0.1:<port>` appended. Each run
// starts every variant once, in turn (interleaved, so a busy machine slows them alike), and measures:
//   - startup: from spawn to the first 200 answered by GET /health (the client retries a refused connection every
//     millisecond);
//   - idle RSS: VmRSS (and its private dirty part) of the process after 20 requests (10 relayed POST /v1/messages to a fake upstream served by
//     this script, 10 GET /health), one second of idleness and nothing else.
// A COMMAND whose first word is `+FILE` runs with FILE's YAML appended to the config (a variant of the config on
// the same build: `ledger-off=+ledger-off.yaml dotnet cc-relay.dll`); the table also splits RSS into its
// anonymous, file-backed and shared-memory parts (RssAnon, RssFile, RssShmem of /proc/<pid>/status; the JIT's
// double-mapped code is shared memory).
// Every listener is on 127.0.0.1; each process is stopped by its PID (SIGTERM, SIGKILL after 10 s); a run that
// does not answer within 30 s fails the benchmark.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import net from "node:net";

const args = process.argv.slice(2);
let runs = 10;
let out = null;
const variants = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--runs") runs = Number(args[++i]);
  else if (args[i] === "--out") out = args[++i];
  else {
    const eq = args[i].indexOf("=");
    if (eq < 1) throw new Error(`not NAME=COMMAND: ${args[i]}`);
    const words = args[i].slice(eq + 1).split(" ").filter(Boolean);
    const extra = words[0]?.startsWith("+") ? readFileSync(words.shift().slice(1), "utf8") : "";
    variants.push({ name: args[i].slice(0, eq), command: words, extra });
  }
}
if (variants.length === 0 || !(runs >= 1)) {
  console.error("usage: node bench/startup.mjs [--runs N] [--out FILE] NAME=COMMAND...");
  process.exit(2);
}

const MESSAGE = JSON.stringify({
  id: "msg_startup", type: "message", role: "assistant", model: "claude-sonnet-4-6",
  content: [{ type: "text", text: "hello" }], stop_reason: "end_turn", stop_sequence: null,
  usage: { input_tokens: 3, output_tokens: 1 },
});
const upstream = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(MESSAGE) });
    res.end(MESSAGE);
  });
});
await new Promise((resolve) => upstream.listen(0, "127.0.0.1", resolve));

const work = mkdtempSync(join(tmpdir(), "cc-relay-startup-"));
const baseConfig = [
  "providers:",
  "  - name: fake",
  "    type: anthropic_compatible",
  `    base_url: "http://127.0.0.1:${upstream.address().port}"`,
  "    keys:",
  '      - key: "startup-key"',
  "logging:",
  "  level: warn",
  "",
].join("\n");
for (const variant of variants) {
  variant.config = join(work, `relay-${variant.name}.yaml`);
  writeFileSync(variant.config, baseConfig + variant.extra);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function request(port, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, agent: false, headers: body ? {
      "content-type": "application/json", "anthropic-version": "2023-06-01", "content-length": Buffer.byteLength(body),
    } : {} }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end(body);
  });
}

// VmRSS, and its private dirty part: what this process alone holds and cannot give back (heaps, stacks, JIT code);
// the rest is clean pages of the executable, the runtime and the libraries, shared and reclaimable.
function memoryKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (re, text) => Number(re.exec(text)[1]);
  return {
    rss: kib(/VmRSS:\s+(\d+) kB/, status), dirty: kib(/Private_Dirty:\s+(\d+) kB/, rollup),
    anon: kib(/RssAnon:\s+(\d+) kB/, status), file: kib(/RssFile:\s+(\d+) kB/, status), shmem: kib(/RssShmem:\s+(\d+) kB/, status),
  };
}

async function once(variant) {
  const port = await freePort();
  const argv = [...variant.command.slice(1), "serve", "--config", variant.config, "--listen", `127.0.0.1:${port}`];
  const started = process.hrtime.bigint();
  const child = spawn(variant.command[0], argv, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let exitedEarly = false;
  exited.then(() => (exitedEarly = true));
  try {
    let startupMs = null;
    while (startupMs === null) {
      if (exitedEarly) throw new Error(`${variant.name} exited during start-up: ${stderr}`);
      if (Number(process.hrtime.bigint() - started) / 1e6 > 30_000) throw new Error(`${variant.name}: no /health in 30 s`);
      try {
        if ((await request(port, "GET", "/health")) === 200) startupMs = Number(process.hrtime.bigint() - started) / 1e6;
      } catch {
        await sleep(1);
      }
    }
    const body = JSON.stringify({ model: "claude-sonnet-4-6", max_tokens: 8, messages: [{ role: "user", content: "hi" }] });
    for (let i = 0; i < 10; i++) {
      const status = await request(port, "POST", "/v1/messages", body);
      if (status !== 200) throw new Error(`${variant.name}: POST /v1/messages answered ${status}`);
      await request(port, "GET", "/health");
    }
    await sleep(1000);
    const memory = memoryKiB(child.pid);
    return { startupMs, rssKiB: memory.rss, dirtyKiB: memory.dirty, anonKiB: memory.anon, fileKiB: memory.file, shmemKiB: memory.shmem };
  } finally {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

const results = Object.fromEntries(variants.map((v) => [v.name, []]));
try {
  for (let run = 1; run <= runs; run++) {
    for (const variant of variants) {
      const r = await once(variant);
      results[variant.name].push(r);
      console.log(`run ${run}/${runs} ${variant.name}: startup ${r.startupMs.toFixed(1)} ms, idle RSS ${(r.rssKiB / 1024).toFixed(1)} MiB (private dirty ${(r.dirtyKiB / 1024).toFixed(1)}, anonymous ${(r.anonKiB / 1024).toFixed(1)}, file ${(r.fileKiB / 1024).toFixed(1)}, shared ${(r.shmemKiB / 1024).toFixed(1)} MiB)`);
    }
  }
} finally {
  upstream.close();
  rmSync(work, { recursive: true, force: true });
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.ceil(i)] - s[lo]) * (i - lo);
};
const lines = [
  `| build | startup to first /health 200, median (min–max) | idle RSS after 20 requests, median (min–max) | of which private dirty, median | anonymous, median | file-backed, median | shared memory, median |`,
  `|---|---|---|---|---|---|---|`,
];
for (const variant of variants) {
  const ms = results[variant.name].map((r) => r.startupMs);
  const mib = results[variant.name].map((r) => r.rssKiB / 1024);
  const dirty = results[variant.name].map((r) => r.dirtyKiB / 1024);
  const anon = results[variant.name].map((r) => r.anonKiB / 1024);
  const file = results[variant.name].map((r) => r.fileKiB / 1024);
  const shmem = results[variant.name].map((r) => r.shmemKiB / 1024);
  const extra = variant.extra ? ` + \`${variant.extra.trim().replace(/\n\s*/g, " ")}\`` : "";
  lines.push(`| ${variant.name} (\`${variant.command.join(" ")}\`${extra}) | ${quantile(ms, 0.5).toFixed(1)} ms (${Math.min(...ms).toFixed(1)}–${Math.max(...ms).toFixed(1)}) | ${quantile(mib, 0.5).toFixed(1)} MiB (${Math.min(...mib).toFixed(1)}–${Math.max(...mib).toFixed(1)}) | ${quantile(dirty, 0.5).toFixed(1)} MiB | ${quantile(anon, 0.5).toFixed(1)} MiB | ${quantile(file, 0.5).toFixed(1)} MiB | ${quantile(shmem, 0.5).toFixed(1)} MiB |`);
}
const table = lines.join("\n");
console.log(`\n${runs} runs each, interleaved\n\n${table}`);
if (out) writeFileSync(out, JSON.stringify({ runs, variants, results }, null, 1) + "\n");
