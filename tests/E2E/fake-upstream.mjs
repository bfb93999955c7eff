// A scripted fake of the Anthropic Messages API, for the end-to-end test (run.sh).
// Node 20, no dependencies. Listens on 127.0.0.1 only.
//
// Usage: node fake-upstream.mjs [--port N] [--log FILE] [--mode tool-loop|error-after-content|overloaded]
//   mode overloaded: every POST /v1/messages answers 529 overloaded_error (a sick provider for failover).
//   (or FAKE_PORT / FAKE_LOG / FAKE_MODE; port 0 = a random free port)
// Prints exactly one line `LISTENING <port>` on stdout once it accepts connections.
//
// Every request is appended to the log as one JSON line, written BEFORE the response starts, so the
// log is complete by the time the client has seen the answer:
//   {seq, method, url, path, headers, bodyText, reply:{...}, verdict?:{...}}
// `bodyText` is the raw request body (decoded from content-encoding if any) so byte-level checks are
// possible; `reply` says what this fake answered (ids, signature) so checks compare captures, not
// constants. After a streamed answer a second line {seq, kind:"sent", sseBase64} holds the exact
// bytes of the SSE body, written before the response ends.
//
// Scripted behaviour of POST /v1/messages (any query string):
//   turn 1 (the last user message has no tool_result):
//     stream: message_start, ping, thinking (thinking_delta + signature_delta), text,
//             tool_use Bash {"command":"echo relay-e2e-ok"} split over several input_json_delta,
//             message_delta(stop_reason tool_use), message_stop.
//     mode error-after-content: message_start, thinking, part of a text block, then an SSE
//             `error` event (overloaded_error) and the end of the response.
//   turn 2 (the last user message carries a tool_result): checks the history against what turn 1
//     sent (verdict in the log), then answers the text `E2E-DONE` with stop_reason end_turn.
//   Without `"stream":true` the same content comes back as one JSON Message (the non-streaming
//   fallback of Claude Code); the error mode only affects streaming answers.
// HEAD / -> 200; POST /v1/messages/count_tokens -> a small count; anything else -> 404 JSON error.

import http from 'node:http';
import fs from 'node:fs';
import zlib from 'node:zlib';
import crypto from 'node:crypto';

// ---- options --------------------------------------------------------------------------------------

function option(name, envName, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[envName] ?? fallback;
}

const port = Number(option('port', 'FAKE_PORT', '0'));
const logPath = option('log', 'FAKE_LOG', 'fake-upstream.jsonl');
const mode = option('mode', 'FAKE_MODE', 'tool-loop');
const MODES = ['tool-loop', 'error-after-content', 'overloaded'];
if (!MODES.includes(mode)) {
  console.error(`unknown mode ${mode}; expected one of ${MODES.join(', ')}`);
  process.exit(2);
}

const TOOL_COMMAND = 'echo relay-e2e-ok';
const TOOL_OUTPUT = 'relay-e2e-ok';
const FINAL_TEXT = 'E2E-DONE';
// Non-ASCII on purpose: the thinking text is echoed back in turn 2 and must survive byte for byte.
const THINKING_TEXT = 'The user wants a round trip — run the command, then report. café ✓';
const MID_STREAM_ERROR = { type: 'overloaded_error', message: 'Overloaded' };

// What turn 1 handed out, keyed by tool_use id, so turn 2 can be checked against it.
const issued = new Map();
let seq = 0;

const rand = (n) => crypto.randomBytes(n).toString('hex');
// Base64 like a real signature: '+', '/' and '=' catch a relay that re-escapes JSON strings.
const newSignature = () => `sig-E2E-${crypto.randomBytes(45).toString('base64')}+/==`;

function log(record) {
  fs.appendFileSync(logPath, JSON.stringify(record) + '\n');
}

// ---- request reading ------------------------------------------------------------------------------

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let buf = Buffer.concat(chunks);
  const enc = (req.headers['content-encoding'] || '').trim().toLowerCase();
  if (enc === 'gzip') buf = zlib.gunzipSync(buf);
  else if (enc === 'deflate') buf = zlib.inflateSync(buf);
  else if (enc === 'br') buf = zlib.brotliDecompressSync(buf);
  return buf.toString('utf8');
}

function lastUserMessage(messages) {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]?.role === 'user') return messages[i];
  return undefined;
}

const blocksOf = (msg) => (Array.isArray(msg?.content) ? msg.content : []);

function toolResultText(block) {
  if (typeof block.content === 'string') return block.content;
  if (Array.isArray(block.content)) return block.content.map((b) => b?.text ?? '').join('');
  return '';
}

// Turn 2: compare the history Claude Code sent with what turn 1 issued.
function verifyTurnTwo(body, bodyText, toolResult) {
  const first = issued.get(toolResult.tool_use_id);
  const assistant = body.messages.findLast(
    (m) => m.role === 'assistant' && blocksOf(m).some((b) => b.type === 'tool_use' && b.id === toolResult.tool_use_id));
  const thinking = blocksOf(assistant).find((b) => b.type === 'thinking');
  const verdict = {
    toolUseIdKnown: first !== undefined,
    toolResultHasOutput: toolResultText(toolResult).includes(TOOL_OUTPUT),
    thinkingEchoed: first !== undefined && thinking?.signature === first.signature && thinking?.thinking === first.thinking,
    signatureBytesIntact: first !== undefined && bodyText.includes(JSON.stringify(first.signature)),
  };
  verdict.ok = Object.values(verdict).every(Boolean);
  return verdict;
}

// ---- answers --------------------------------------------------------------------------------------

function turnOneContent() {
  const toolUseId = `toolu_E2E_${rand(12)}`;
  const signature = newSignature();
  issued.set(toolUseId, { signature, thinking: THINKING_TEXT });
  return {
    toolUseId,
    signature,
    content: [
      { type: 'thinking', thinking: THINKING_TEXT, signature },
      { type: 'text', text: 'I will run the command now.' },
      { type: 'tool_use', id: toolUseId, name: 'Bash', input: { command: TOOL_COMMAND } },
    ],
    stopReason: 'tool_use',
  };
}

const turnTwoContent = () => ({ content: [{ type: 'text', text: FINAL_TEXT }], stopReason: 'end_turn' });

function message(id, model, content, stopReason) {
  return {
    id, type: 'message', role: 'assistant', model, content,
    stop_reason: stopReason, stop_sequence: null,
    usage: { input_tokens: 42, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 17 },
  };
}

const frame = (event, data) => `event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`;

// Splits a string into `n` pieces of roughly equal length (for input_json_delta fragments).
function split(s, n) {
  const size = Math.ceil(s.length / n);
  const parts = [];
  for (let i = 0; i < s.length; i += size) parts.push(s.slice(i, i + size));
  return parts;
}

// The SSE frames for one content block; `cut` stops a text block half-way (error mode).
function blockFrames(index, block, cut = false) {
  const out = [];
  if (block.type === 'thinking') {
    out.push(frame('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }));
    for (const t of split(block.thinking, 3))
      out.push(frame('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: t } }));
    out.push(frame('content_block_delta', { index, delta: { type: 'signature_delta', signature: block.signature } }));
  } else if (block.type === 'text') {
    out.push(frame('content_block_start', { index, content_block: { type: 'text', text: '' } }));
    const parts = split(block.text, 2);
    for (const t of cut ? parts.slice(0, 1) : parts)
      out.push(frame('content_block_delta', { index, delta: { type: 'text_delta', text: t } }));
    if (cut) return out;
  } else if (block.type === 'tool_use') {
    out.push(frame('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } }));
    for (const p of ['', ...split(JSON.stringify(block.input), 3)])
      out.push(frame('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: p } }));
  }
  out.push(frame('content_block_stop', { index }));
  return out;
}

function streamFrames(msg, errorAfterContent) {
  const out = [frame('message_start', { message: { ...msg, content: [], stop_reason: null, usage: { ...msg.usage, output_tokens: 1 } } })];
  out.push(frame('ping', {}));
  if (errorAfterContent) {
    out.push(...blockFrames(0, msg.content[0]));
    out.push(...blockFrames(1, msg.content[1], true));
    out.push(frame('error', { error: MID_STREAM_ERROR }));
    return out;
  }
  msg.content.forEach((b, i) => out.push(...blockFrames(i, b)));
  out.push(frame('message_delta', { delta: { stop_reason: msg.stop_reason, stop_sequence: null }, usage: { output_tokens: msg.usage.output_tokens } }));
  out.push(frame('message_stop', {}));
  return out;
}

// Writes frames one by one, waiting for each write to reach the socket. Two frames go out in two
// writes: the ping (cut inside its `event:` line) and the one whose UTF-8 bytes hold the '✓' (cut
// inside that 3-byte character), so a relay meets chunk boundaries that are not event boundaries.
// Returns the exact bytes sent.
async function writeFrames(res, frames) {
  const write = (b) => new Promise((resolve, reject) => res.write(b, (err) => (err ? reject(err) : resolve())));
  const sent = [];
  for (const f of frames) {
    const bytes = Buffer.from(f, 'utf8');
    const check = bytes.indexOf('✓');
    const cut = f.startsWith('event: ping') ? 7 : check >= 0 ? check + 1 : -1;
    if (cut > 0) {
      await write(bytes.subarray(0, cut));
      await write(bytes.subarray(cut));
    } else {
      await write(bytes);
    }
    sent.push(bytes);
  }
  return Buffer.concat(sent);
}

function sendJson(res, status, obj, requestId) {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': requestId });
  res.end(JSON.stringify(obj));
}

async function handleMessages(req, res, record, bodyText) {
  let body;
  try {
    body = JSON.parse(bodyText);
  } catch {
    record.reply = { status: 400, reason: 'body is not JSON' };
    log(record);
    return sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: 'body is not JSON' } }, record.requestId);
  }
  if (mode === 'overloaded') {
    record.reply = { status: 529, overloaded: true };
    log(record);
    return sendJson(res, 529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, record.requestId);
  }
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const toolResult = blocksOf(lastUserMessage(messages)).find((b) => b.type === 'tool_result');
  const turn = toolResult ? 2 : 1;
  const streaming = body.stream === true;
  const planned = turn === 1 ? turnOneContent() : turnTwoContent();
  const errorAfterContent = streaming && turn === 1 && mode === 'error-after-content';
  const msg = message(`msg_E2E_${rand(10)}`, body.model ?? 'unknown', planned.content, planned.stopReason);

  record.reply = {
    turn, streaming, mode, errorAfterContent, status: 200,
    messageId: msg.id, toolUseId: planned.toolUseId, signature: planned.signature,
    thinking: turn === 1 ? THINKING_TEXT : undefined,
    text: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    error: errorAfterContent ? MID_STREAM_ERROR : undefined,
  };
  if (turn === 2) record.verdict = verifyTurnTwo(body, bodyText, toolResult);
  log(record);

  if (!streaming) return sendJson(res, 200, msg, record.requestId);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': record.requestId });
  const sent = await writeFrames(res, streamFrames(msg, errorAfterContent));
  // Logged before the response ends, so a client that has seen the end can rely on the record.
  log({ seq: record.seq, kind: 'sent', sseBase64: sent.toString('base64') });
  res.end();
}

// ---- server ---------------------------------------------------------------------------------------

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://fake');
  const record = {
    seq: ++seq, time: new Date().toISOString(), method: req.method, url: req.url, path: url.pathname,
    headers: req.headers, requestId: `req_E2E_${rand(8)}`,
  };
  try {
    record.bodyText = await readBody(req);
    if (req.method === 'POST' && url.pathname === '/v1/messages') return await handleMessages(req, res, record, record.bodyText);
    if (req.method === 'POST' && url.pathname === '/v1/messages/count_tokens') {
      record.reply = { status: 200 };
      log(record);
      return sendJson(res, 200, { input_tokens: 42 }, record.requestId);
    }
    if (req.method === 'HEAD' && url.pathname === '/') {
      record.reply = { status: 200 };
      log(record);
      res.writeHead(200);
      return res.end();
    }
    record.reply = { status: 404 };
    log(record);
    return sendJson(res, 404, { type: 'error', error: { type: 'not_found_error', message: `no route ${req.method} ${url.pathname}` } }, record.requestId);
  } catch (err) {
    record.failure = String(err?.stack ?? err);
    log(record);
    res.destroy();
  }
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
