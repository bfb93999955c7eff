// The translated providers' benchmark (bench/translated.sh): one fake upstream serving three dialects, and the load
// client that measures relay → fake OpenAI Chat and relay → fake Gemini against relay → fake Anthropic (passthrough)
// in one interleaved schedule. Node 20, no dependencies; 127.0.0.1 only.
//
//   node translated.mjs fake --port 0
//       Prints `LISTENING <port>`. Every streamed answer is N text events `gap_ms` apart (N, gap_ms from the request:
//       the Anthropic body's metadata.user_id / the OpenAI body's `user` is not used; the knobs ride in the prompt
//       text `bench:n=<N>,gap=<ms>`), each carrying its send time `ts=<CLOCK_MONOTONIC ns>;` in its text:
//         POST /v1/messages                           Anthropic SSE (message_start … N text_delta … message_stop)
//         POST /v1/chat/completions                   OpenAI chunks (role chunk, N content chunks, finish, usage, [DONE])
//         POST /v1beta/models/{m}:streamGenerateContent  Gemini SSE (N chunks of one text part, the last with STOP)
//   node translated.mjs client --lanes name=url,... --pids name=pid,... --rounds R --events N --gap-ms G
//                              --hold K --hold-events E --out FILE.json
//       1. streams: R rounds; each round runs one stream on every lane, one lane at a time, the order rotated per round
//          (so every lane meets the same moments of the machine). Per event: delay = arrival − ts (the same clock);
//          coalesced = an event that arrived within 1/4 gap of the previous one although sent ≥ 1/2 gap after it (held
//          back and delivered together). The relay's CPU (utime+stime from /proc/<pid>/stat) over the phase ÷ streams.
//       2. memory: on every lane at once, K streams opened and held open (each sends its first event, then waits
//          G_hold before the next): the relay's RSS (VmRSS) before and with all K open (after each got an event).
//       Writes FILE.json with the raw figures and prints a summary.

import http from 'node:http';
import fs from 'node:fs';

const args = process.argv.slice(2);
const cmd = args[0];
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const now = () => process.hrtime.bigint(); // CLOCK_MONOTONIC ns on Linux, as in the fake

// ---- the fake upstream ------------------------------------------------------------------------------------------

function knobs(bodyText) {
  const m = /bench:n=(\d+),gap=([\d.]+)/.exec(bodyText);
  return { n: m ? Number(m[1]) : 10, gap: m ? Number(m[2]) : 5 };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function streamAnswer(res, dialect, n, gap) {
  const write = (s) => new Promise((resolve, reject) => res.write(s, (e) => (e ? reject(e) : resolve())));
  const text = () => `ts=${now()}; word `;
  if (dialect === 'anthropic') {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const ev = (type, data) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
    await write(ev('message_start', { message: { id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-sonnet-4-6', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 2417, output_tokens: 1 } } })
      + ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }));
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(gap);
      await write(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: text() } }));
    }
    await write(ev('content_block_stop', { index: 0 }) + ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: n + 1 } }) + ev('message_stop', {}));
  } else if (dialect === 'openai') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const base = { id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1, model: 'bench-model' };
    const chunk = (delta, finish = null) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(gap);
      await write((i === 0 ? chunk({ role: 'assistant', content: '' }) : '') + chunk({ content: text() }));
    }
    await write(chunk({}, 'stop') + `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 2417, completion_tokens: n, total_tokens: 2417 + n } })}\n\ndata: [DONE]\n\n`);
  } else {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(gap);
      const last = i === n - 1;
      const c = { candidates: [{ content: { role: 'model', parts: [{ text: text() }] }, index: 0, ...(last ? { finishReason: 'STOP' } : {}) }],
        usageMetadata: { promptTokenCount: 2417, ...(last ? { candidatesTokenCount: n, totalTokenCount: 2417 + n } : {}) }, modelVersion: 'bench-model', responseId: 'bench' };
      await write(`data: ${JSON.stringify(c)}\r\n\r\n`);
    }
  }
  res.end();
}

function fake() {
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://fake');
    const { n, gap } = knobs(body);
    let dialect;
    if (req.method === 'POST' && url.pathname === '/v1/messages') dialect = 'anthropic';
    else if (req.method === 'POST' && url.pathname === '/v1/chat/completions') dialect = 'openai';
    else if (req.method === 'POST' && /:streamGenerateContent$/.test(url.pathname)) dialect = 'gemini';
    else { res.writeHead(req.method === 'GET' ? 200 : 404, { 'content-type': 'application/json' }); res.end('{"data":[],"totalTokens":1}'); return; }
    try { await streamAnswer(res, dialect, n, gap); } catch { res.destroy(); }
  });
  server.keepAliveTimeout = 300_000;
  server.listen(Number(opt('port', '0')), '127.0.0.1', () => process.stdout.write(`LISTENING ${server.address().port}\n`));
  for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { server.closeAllConnections(); process.exit(0); });
}

// ---- the client ---------------------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function body(n, gap) {
  return JSON.stringify({ model: 'claude-sonnet-4-6', max_tokens: 1024, stream: true,
    messages: [{ role: 'user', content: `bench:n=${n},gap=${gap} Write the routing fix.` }] });
}

// One stream: resolves with per-event {delay ns, coalesced} once message_stop arrives. onFirst: after the first text.
function stream(url, n, gap, onFirst) {
  return new Promise((resolve, reject) => {
    const payload = body(n, gap);
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-bench-client', 'anthropic-version': '2023-06-01', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); reject(new Error(`HTTP ${res.statusCode} from ${url}`)); return; }
      let buf = '';
      const events = [];
      let prev = null;
      let stopped = false;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const arrival = now();
        buf += d;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (ev.includes('event: message_stop')) stopped = true;
          for (const m of ev.matchAll(/ts=(\d+);/g)) {
            const ts = BigInt(m[1]);
            const e = { delay: Number(arrival - ts), ts, arrival, coalesced: false };
            if (prev && Number(ts - prev.ts) >= gap * 0.5e6 && Number(arrival - prev.arrival) < gap * 0.25e6) {
              e.coalesced = true;
              e.prev = prev;
            }
            events.push(e);
            prev = e;
            if (events.length === 1 && onFirst) onFirst();
          }
        }
      });
      res.on('end', () => (stopped && events.length === n ? resolve(events) : reject(new Error(`stream from ${url} ended with ${events.length}/${n} events, message_stop ${stopped}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime + stime, clock ticks
};
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const k = s.length; return k ? (k % 2 ? s[(k - 1) / 2] : (s[k / 2 - 1] + s[k / 2]) / 2) : NaN; };

async function client() {
  const lanes = opt('lanes', '').split(',').map((s) => { const [name, url] = s.split('='); return { name, url }; });
  const pids = Object.fromEntries(opt('pids', '').split(',').filter(Boolean).map((s) => s.split('=')));
  const rounds = Number(opt('rounds', '100')), n = Number(opt('events', '20')), gap = Number(opt('gap-ms', '5'));
  const hold = Number(opt('hold', '100')), holdGap = Number(opt('hold-gap-ms', '4000'));
  const warm = Number(opt('warmup', '20'));
  const res = { rounds, events: n, gapMs: gap, hold, lanes: {} };
  for (const l of lanes) res.lanes[l.name] = { delaysNs: [], coalesced: 0, events: 0, failures: 0, perRoundP50: [] };

  // warm-up: every lane, a few streams at once
  for (let i = 0; i < warm; i++) await Promise.all(lanes.map((l) => stream(l.url, n, 1).catch(() => null)));

  const cpu0 = Object.fromEntries(lanes.map((l) => [l.name, cpuTicks(pids[l.name])]));
  const stalls = [];
  const phase = { from: now() };
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < lanes.length; k++) {
      const l = lanes[(r + k) % lanes.length];
      const out = res.lanes[l.name];
      try {
        const evs = await stream(l.url, n, gap);
        // the first event's delay carries the relay's request path; per-event delay: the events after it
        const later = evs.slice(1);
        out.delaysNs.push(...later.map((e) => e.delay));
        out.perRoundP50.push(median(later.map((e) => e.delay)));
        out.coalesced += later.filter((e) => e.coalesced).length;
        // each coalesced event's window: the previous event was held from its send (prev.ts) to its late arrival
        for (const e of later.filter((x) => x.coalesced)) {
          stalls.push({ lane: l.name, round: r, from: e.prev.ts, to: e.prev.arrival, heldMs: Number(e.prev.arrival - e.prev.ts) / 1e6 });
        }
        out.events += later.length;
      } catch (e) {
        out.failures++;
        out.lastError = String(e.message ?? e);
      }
    }
  }
  phase.to = now();
  const hz = 100; // USER_HZ
  for (const l of lanes) {
    const out = res.lanes[l.name];
    out.cpuMsPerStream = ((cpuTicks(pids[l.name]) - cpu0[l.name]) * 1000 / hz) / rounds;
  }

  // memory: K streams held open on every lane at once
  const rss0 = Object.fromEntries(lanes.map((l) => [l.name, rssKb(pids[l.name])]));
  let firsts = 0;
  let allFirst;
  const allOpen = new Promise((r) => { allFirst = r; });
  const total = hold * lanes.length;
  const held = lanes.flatMap((l) => Array.from({ length: hold }, () => stream(l.url, 2, holdGap, () => { if (++firsts === total) allFirst(); }).catch((e) => { res.lanes[l.name].holdError = String(e.message ?? e); })));
  const timeout = new Promise((r) => setTimeout(() => r('timeout'), 60_000));
  const got = await Promise.race([allOpen, timeout]);
  const rss1 = Object.fromEntries(lanes.map((l) => [l.name, rssKb(pids[l.name])]));
  for (const l of lanes) {
    Object.assign(res.lanes[l.name], { rssIdleKb: rss0[l.name], rssOpenKb: rss1[l.name], kbPerOpenStream: (rss1[l.name] - rss0[l.name]) / hold, holdComplete: got !== 'timeout' });
  }
  await Promise.all(held);

  // summary
  const base = res.lanes[lanes[0].name];
  const lines = [];
  lines.push(`| lane | per-event delay p50 (ms) | p90 | added vs ${lanes[0].name} at p50 (ms) | coalesced | CPU per stream (ms) | CPU ratio | RSS idle → ${hold} open (MB) | KB per open stream | memory ratio | failures |`);
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const l of lanes) {
    const o = res.lanes[l.name];
    o.p50Ms = pct(o.delaysNs, 0.5) / 1e6;
    o.p90Ms = pct(o.delaysNs, 0.9) / 1e6;
    // paired: the median over rounds of (this lane's round p50 − the base lane's round p50)
    o.addedP50Ms = median(o.perRoundP50.map((v, i) => v - base.perRoundP50[i]).filter((v) => !Number.isNaN(v))) / 1e6;
    o.coalescedPct = o.events ? (100 * o.coalesced) / o.events : NaN;
    o.cpuRatio = o.cpuMsPerStream / base.cpuMsPerStream;
    o.memRatio = o.kbPerOpenStream / base.kbPerOpenStream;
    lines.push(`| ${l.name} | ${o.p50Ms.toFixed(3)} | ${o.p90Ms.toFixed(3)} | ${l === lanes[0] ? '—' : (o.addedP50Ms >= 0 ? '+' : '') + o.addedP50Ms.toFixed(3)} | ${o.coalesced}/${o.events} (${o.coalescedPct.toFixed(2)} %) | ${o.cpuMsPerStream.toFixed(2)} | ${o.cpuRatio.toFixed(2)} | ${(o.rssIdleKb / 1024).toFixed(1)} → ${(o.rssOpenKb / 1024).toFixed(1)} | ${o.kbPerOpenStream.toFixed(1)} | ${o.memRatio.toFixed(2)} | ${o.failures}${o.lastError ? ` (${o.lastError})` : ''}${o.holdError ? ` hold: ${o.holdError}` : ''} |`);
  }
  for (const l of lanes) { delete res.lanes[l.name].delaysNs; }
  const traces = opt('gc-traces', '');
  if (traces) lines.push('', ...correlate(stalls, phase, traces));
  res.stalls = stalls.map((s) => ({ ...s, from: String(s.from), to: String(s.to) }));
  fs.writeFileSync(opt('out', '/dev/null'), JSON.stringify(res, null, 1));
  console.log(lines.join('\n'));
  agent.destroy();
}

// Stalls against the relays' runtime traces (bench/GcTrace: `<start ns> <end ns> <what>` lines, CLOCK_MONOTONIC):
// for every coalesced event, what any relay's runtime did while the previous event was held; then, per relay, its
// GC pauses during the streams phase by generation, so a pause kind that never coincides with a stall is visible too.
function correlate(stalls, phase, spec) {
  const traces = spec.split(',').filter(Boolean).map((s) => {
    const [name, file] = s.split('=');
    const items = fs.readFileSync(file, 'utf8').split('\n').filter((x) => x && !x.startsWith('#')).map((x) => {
      const [a, b, ...what] = x.split(' ');
      return { from: BigInt(a), to: BigInt(b), what: what.join(' ') };
    });
    return { name, items };
  });
  const overlapping = (t, s) => t.items.filter((i) => i.from <= s.to && i.to >= s.from - 1_000_000n);
  const own = (s) => traces.find((t) => t.name === s.lane);
  const withOwnPause = stalls.filter((s) => own(s) && overlapping(own(s), s).some((i) => i.what.startsWith('pause')));
  const out = ['Coalesced events against the relays\' runtime events (GC pauses, thread-pool adjustments) in the same window:',
    `${withOwnPause.length} of ${stalls.length} coalesced events were held while their own relay was paused by its GC.`, '',
    '| lane | round | previous event held (ms) | its own relay\'s runtime events in the hold | other relays\' |', '|---|---|---|---|---|'];
  for (const s of stalls) {
    const mine = own(s) ? overlapping(own(s), s).map((i) => i.what) : [];
    const others = traces.filter((t) => t.name !== s.lane).flatMap((t) => overlapping(t, s).map((i) => `${t.name}: ${i.what}`));
    out.push(`| ${s.lane} | ${s.round} | ${s.heldMs.toFixed(2)} | ${mine.join('; ') || 'none'} | ${others.join('; ') || 'none'} |`);
  }
  out.push('', '| relay | GC pauses in the streams phase (count, max ms) by kind |', '|---|---|');
  for (const t of traces) {
    const kinds = {};
    for (const i of t.items.filter((x) => x.what.startsWith('pause') && x.from >= phase.from && x.to <= phase.to)) {
      const k = /gen\d+ reason=\d+/.exec(i.what)?.[0] ?? 'suspend only';
      const ms = Number(i.to - i.from) / 1e6;
      kinds[k] ??= { n: 0, max: 0 };
      kinds[k].n++;
      kinds[k].max = Math.max(kinds[k].max, ms);
    }
    out.push(`| ${t.name} | ${Object.entries(kinds).map(([k, v]) => `${k}: ${v.n}, max ${v.max.toFixed(2)}`).join('; ') || 'none'} |`);
  }
  return out;
}

if (cmd === 'fake') fake();
else if (cmd === 'client') await client();
else { console.error('usage: translated.mjs fake|client …'); process.exit(2); }
