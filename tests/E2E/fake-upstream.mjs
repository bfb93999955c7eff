// A scripted fake of the Anthropic Messages API, for the end-to-end test (run.sh).
// Node 20, no dependencies (except --mode bedrock, below). Listens on 127.0.0.1 only.
//
// Usage: node fake-upstream.mjs [--port N] [--log FILE] [--mode tool-loop|error-after-content|overloaded|crossed|bedrock]
//   mode overloaded: every POST /v1/messages answers 529 overloaded_error (a sick provider for failover).
//   mode crossed: a strict Anthropic upstream whose tool loop another family serves in the middle (scenario
//     `crossed-tool-loop`): turn 1 as tool-loop; a request with one tool result (the Bash one) answers 529, so the
//     relay fails over to an OpenAI-shaped provider, which calls two more tools; a request with more tool results
//     (the loop come back) is checked as Anthropic checks a replayed conversation (every thinking block signed by
//     this fake; with thinking on, the final turn's first assistant message starts with thinking; no
//     clear_thinking edit with thinking off), refused with Anthropic's 400 wording if it fails, else answered
//     E2E-DONE. reply.strict holds the verdict.
//   mode bedrock: a fake AWS Bedrock runtime instead (see "Bedrock mode" below).
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
//
// Bedrock mode (--mode bedrock; needs tests/Interop's node_modules for @smithy/signature-v4,
// @aws-crypto/sha256-js and @smithy/eventstream-codec, or FAKE_SMITHY_FROM = a directory holding them):
//   POST /model/{id}/invoke-with-response-stream  the same scripted conversation as an AWS event stream
//                                                  (`chunk` events, one Anthropic stream event each,
//                                                  base64 in {"bytes":…,"p":…}; no pings, as Bedrock)
//   POST /model/{id}/invoke                        the same content as one JSON Message
//   POST /model/{id}/count-tokens                  {"inputTokens":42}
//   Every model call must be SigV4-signed for region us-east-1, service bedrock, with the access key id
//   and secret of --aws-access-key-id / --aws-secret-access-key (or FAKE_AWS_ACCESS_KEY_ID /
//   FAKE_AWS_SECRET_ACCESS_KEY). The fake recomputes the signature with @smithy/signature-v4 over the
//   request exactly as received (raw path, the headers named in SignedHeaders, the raw body bytes) and
//   answers 403 InvalidSignatureException when it differs. A body that is not Bedrock-shaped (a `model` or
//   `stream` member, `anthropic_version` other than bedrock-2023-05-31) gets 400 ValidationException.
//   The record's `bedrock` member holds what was checked: {operation, modelId, signature:{ok, reason},
//   shape:{ok, reason}}; after a streamed answer the `sent` line holds the event-stream bytes
//   (`eventStreamBase64`) and the Anthropic events they carry (`events`).

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
const MODES = ['tool-loop', 'error-after-content', 'overloaded', 'crossed', 'bedrock'];
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

async function readRaw(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

function decodeBody(req, raw) {
  let buf = raw;
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

// Decides turn 1 or 2 from the history, builds the answer and fills record.reply (and record.verdict on
// turn 2). `errorAfterContent` applies to turn 1 only.
function planAnswer(record, body, bodyText, model, streaming, errorAfterContent) {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const toolResult = blocksOf(lastUserMessage(messages)).find((b) => b.type === 'tool_result');
  const turn = toolResult ? 2 : 1;
  const planned = turn === 1 ? turnOneContent() : turnTwoContent();
  errorAfterContent = errorAfterContent && turn === 1;
  const msg = message(`msg_E2E_${rand(10)}`, model, planned.content, planned.stopReason);
  record.reply = {
    turn, streaming, mode, errorAfterContent, status: 200,
    messageId: msg.id, toolUseId: planned.toolUseId, signature: planned.signature,
    thinking: turn === 1 ? THINKING_TEXT : undefined,
    text: msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''),
    error: errorAfterContent ? MID_STREAM_ERROR : undefined,
  };
  if (turn === 2) record.verdict = verifyTurnTwo(body, bodyText, toolResult);
  return { msg, turn, errorAfterContent };
}

// The thinking proofs a replayed conversation carries (signatures, redacted data), in order.
const signaturesIn = (body) => body.messages.flatMap(blocksOf)
  .filter((b) => b?.type === 'thinking' || b?.type === 'redacted_thinking').map((b) => b.signature ?? b.data ?? '');

// What Anthropic refuses in a replayed conversation, in its words; null when it accepts it (the relay's own and
// another family's thinking are never signed by this fake).
function anthropicRefusal(body) {
  const messages = body.messages;
  const isThinking = (b) => b?.type === 'thinking' || b?.type === 'redacted_thinking';
  const ours = new Set([...issued.values()].map((v) => v.signature));
  for (const [i, m] of messages.entries()) {
    const blocks = blocksOf(m);
    for (const [j, b] of blocks.entries()) {
      if (isThinking(b) && !ours.has(b.signature ?? b.data)) return `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`;
    }
    if (blocks.some(isThinking) && !isThinking(blocks[0]))
      return `messages.${i}.content.0: If an assistant message contains any thinking blocks, the first block must be thinking or redacted_thinking. Found ${blocks[0].type}.`;
  }
  const thinkingOn = ['enabled', 'adaptive'].includes(body.thinking?.type);
  const newTurn = messages.findLastIndex((m) => m.role === 'user' && !blocksOf(m).some((b) => b.type === 'tool_result'));
  const first = messages.findIndex((m, k) => k > newTurn && m.role === 'assistant');
  if (thinkingOn && first >= 0 && !isThinking(blocksOf(messages[first])[0]))
    return `messages.${first}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${blocksOf(messages[first])[0]?.type ?? 'text'}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable \`thinking\`.`;
  if (!thinkingOn && (body.context_management?.edits ?? []).some((e) => String(e.type).startsWith('clear_thinking')))
    return 'context_management.edits.0: clear_thinking_20251015 strategy requires `thinking` to be enabled or adaptive';
  return null;
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
  const toolResults = (Array.isArray(body.messages) ? body.messages : [])
    .filter((m) => m?.role === 'user').flatMap(blocksOf).filter((b) => b?.type === 'tool_result').length;
  if (mode === 'crossed' && toolResults >= 2) {
    const refusal = anthropicRefusal(body);
    if (refusal) {
      record.reply = { status: 400, strict: { ok: false, refusal } };
      log(record);
      return sendJson(res, 400, { type: 'error', error: { type: 'invalid_request_error', message: refusal } }, record.requestId);
    }
  }
  if (mode === 'overloaded' || (mode === 'crossed' && toolResults === 1)) {
    record.reply = { status: 529, overloaded: true };
    log(record);
    return sendJson(res, 529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, record.requestId);
  }
  const streaming = body.stream === true;
  const { msg, errorAfterContent } =
    planAnswer(record, body, bodyText, body.model ?? 'unknown', streaming, streaming && mode === 'error-after-content');
  if (mode === 'crossed' && toolResults >= 2) {
    record.reply.strict = { ok: true, toolResults, thinking: body.thinking ?? null, signatures: signaturesIn(body) };
    delete record.verdict; // the Bash result is no longer the last one: verifyTurnTwo's checks do not apply
  }
  log(record);

  if (!streaming) return sendJson(res, 200, msg, record.requestId);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': record.requestId });
  const sent = await writeFrames(res, streamFrames(msg, errorAfterContent));
  // Logged before the response ends, so a client that has seen the end can rely on the record.
  log({ seq: record.seq, kind: 'sent', sseBase64: sent.toString('base64') });
  res.end();
}

// ---- Bedrock mode ---------------------------------------------------------------------------------

const AWS_REGION = 'us-east-1';
const AWS_SERVICE = 'bedrock';
const AWS_ACCESS_KEY_ID = option('aws-access-key-id', 'FAKE_AWS_ACCESS_KEY_ID', 'AKIAE2ETESTACCESSKEY');
const AWS_SECRET_ACCESS_KEY = option('aws-secret-access-key', 'FAKE_AWS_SECRET_ACCESS_KEY', 'e2e-test-secret-access-key');

// The AWS SDK's own signer and event-stream codec, loaded from tests/Interop (only in bedrock mode).
let smithy;
async function loadSmithy() {
  if (smithy) return smithy;
  const { createRequire } = await import('node:module');
  const from = process.env.FAKE_SMITHY_FROM ?? new URL('../Interop/', import.meta.url).pathname;
  const require = createRequire(`${from.replace(/\/?$/, '/')}package.json`);
  const { SignatureV4 } = require('@smithy/signature-v4');
  const { Sha256 } = require('@aws-crypto/sha256-js');
  const { EventStreamCodec } = require('@smithy/eventstream-codec');
  const { fromUtf8, toUtf8 } = require('@smithy/util-utf8');
  smithy = { SignatureV4, Sha256, codec: new EventStreamCodec(toUtf8, fromUtf8) };
  return smithy;
}

// Recomputes the SigV4 signature of the request as received. Returns {ok, reason}.
async function verifySigV4(req, raw) {
  const { SignatureV4, Sha256 } = await loadSmithy();
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { ok: false, reason: `Authorization is not AWS4-HMAC-SHA256 (got ${JSON.stringify(auth.slice(0, 60))})` };
  const [, akid, scopeDate, region, service, signedList, signature] = m;
  if (akid !== AWS_ACCESS_KEY_ID) return { ok: false, reason: `access key id ${akid} is not the test key` };
  if (region !== AWS_REGION || service !== AWS_SERVICE) return { ok: false, reason: `scope ${region}/${service}` };
  const amzDate = req.headers['x-amz-date'] ?? '';
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!d) return { ok: false, reason: `x-amz-date missing or malformed: ${JSON.stringify(amzDate)}` };
  if (`${d[1]}${d[2]}${d[3]}` !== scopeDate) return { ok: false, reason: 'credential scope date is not x-amz-date\'s' };
  const signed = signedList.split(';');
  for (const h of ['host', 'x-amz-date']) if (!signed.includes(h)) return { ok: false, reason: `${h} is not signed` };
  const headers = {};
  for (const h of signed) {
    if (req.headers[h] === undefined) return { ok: false, reason: `signed header ${h} is not in the request` };
    headers[h] = String(req.headers[h]);
  }
  const bodyHash = crypto.createHash('sha256').update(raw).digest('hex');
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== bodyHash) return { ok: false, reason: 'x-amz-content-sha256 is not the body\'s hash' };
  // The path exactly as on the wire; smithy encodes it again (uriEscapePath), as AWS does for non-S3.
  const rawUrl = req.url;
  const q = rawUrl.indexOf('?');
  const query = {};
  if (q >= 0) {
    for (const pair of rawUrl.slice(q + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
      const value = decodeURIComponent(eq < 0 ? '' : pair.slice(eq + 1));
      query[name] = name in query ? [].concat(query[name], value) : value;
    }
  }
  const signer = new SignatureV4({
    service: AWS_SERVICE, region: AWS_REGION, sha256: Sha256, uriEscapePath: true, applyChecksum: false,
    credentials: { accessKeyId: AWS_ACCESS_KEY_ID, secretAccessKey: AWS_SECRET_ACCESS_KEY },
  });
  const request = {
    method: req.method, protocol: 'http:', hostname: String(req.headers.host ?? '').replace(/:\d+$/, ''),
    path: q >= 0 ? rawUrl.slice(0, q) : rawUrl, query, headers, body: new Uint8Array(raw),
  };
  const date = new Date(Date.UTC(+d[1], +d[2] - 1, +d[3], +d[4], +d[5], +d[6]));
  const out = await signer.sign(request, { signingDate: date, signableHeaders: new Set(signed) });
  const want = /Signature=([0-9a-f]{64})/.exec(out.headers.authorization)?.[1];
  const wantList = /SignedHeaders=([^,\s]+)/.exec(out.headers.authorization)?.[1];
  if (wantList !== signedList) return { ok: false, reason: `SignedHeaders ${signedList}, smithy signs ${wantList}` };
  if (want !== signature) return { ok: false, reason: `signature ${signature}, smithy computes ${want}` };
  return { ok: true };
}

// The body InvokeModel expects: no model/stream (they are in the path/operation), anthropic_version in the body.
function checkBedrockShape(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { ok: false, reason: 'body is not a JSON object' };
  if ('model' in body) return { ok: false, reason: 'body has a model member' };
  if ('stream' in body) return { ok: false, reason: 'body has a stream member' };
  if (body.anthropic_version !== 'bedrock-2023-05-31') return { ok: false, reason: `anthropic_version ${JSON.stringify(body.anthropic_version)}` };
  if (!Array.isArray(body.messages)) return { ok: false, reason: 'messages is not an array' };
  return { ok: true };
}

function sendAwsError(res, status, errorType, message, requestId) {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': errorType, 'x-amzn-requestid': requestId });
  res.end(JSON.stringify({ message }));
}

// One event-stream `chunk` message carrying one Anthropic stream event, as Bedrock frames it.
function chunkMessage(codec, event) {
  const payload = { bytes: Buffer.from(JSON.stringify(event), 'utf8').toString('base64'), p: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'.slice(0, 1 + (event.type.length % 20)) };
  return Buffer.from(codec.encode({
    headers: {
      ':event-type': { type: 'string', value: 'chunk' },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: Buffer.from(JSON.stringify(payload), 'utf8'),
  }));
}

// Bedrock answers with the Anthropic model name, not the id in the URL:
// us.anthropic.claude-haiku-4-5-20251001-v1:0 -> claude-haiku-4-5-20251001.
const anthropicName = (modelId) => modelId.replace(/^([a-z-]+\.)?anthropic\./, '').replace(/-v\d+(:\d+)?$/, '');

async function handleBedrock(req, res, record, raw, url) {
  const route = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream|count-tokens)$/.exec(url.pathname);
  if (req.method !== 'POST' || !route) {
    record.reply = { status: 404 };
    log(record);
    return sendAwsError(res, 404, 'UnknownOperationException', `no route ${req.method} ${url.pathname}`, record.requestId);
  }
  const [, encodedId, operation] = route;
  const modelId = decodeURIComponent(encodedId);
  const signature = await verifySigV4(req, raw);
  record.bedrock = { operation, modelId, signature };
  if (!signature.ok) {
    record.reply = { status: 403, reason: signature.reason };
    log(record);
    return sendAwsError(res, 403, 'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      record.requestId);
  }
  if (operation === 'count-tokens') {
    record.reply = { status: 200 };
    log(record);
    res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': record.requestId });
    return res.end(JSON.stringify({ inputTokens: 42 }));
  }
  let body;
  try {
    body = JSON.parse(record.bodyText);
  } catch {
    body = undefined;
  }
  const shape = checkBedrockShape(body);
  record.bedrock.shape = shape;
  if (!shape.ok) {
    record.reply = { status: 400, reason: shape.reason };
    log(record);
    return sendAwsError(res, 400, 'ValidationException', `fake Bedrock: ${shape.reason}`, record.requestId);
  }
  const streaming = operation === 'invoke-with-response-stream';
  const { msg } = planAnswer(record, body, record.bodyText, anthropicName(modelId), streaming, false);
  log(record);
  if (!streaming) {
    res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': record.requestId });
    return res.end(JSON.stringify(msg));
  }
  const { codec } = await loadSmithy();
  // Bedrock's stream: the Anthropic events without pings; metrics on message_stop.
  const events = streamFrames(msg, false)
    .map((f) => JSON.parse(f.slice(f.indexOf('\ndata: ') + 7)))
    .filter((e) => e.type !== 'ping');
  events[events.length - 1]['amazon-bedrock-invocationMetrics'] =
    { inputTokenCount: 42, outputTokenCount: 17, invocationLatency: 321, firstByteLatency: 123 };
  res.writeHead(200, {
    'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': record.requestId,
    'x-amzn-bedrock-content-type': 'application/json',
  });
  res.flushHeaders();
  const write = (b) => new Promise((resolve, reject) => res.write(b, (err) => (err ? reject(err) : resolve())));
  const sent = [];
  for (const [i, e] of events.entries()) {
    const bytes = chunkMessage(codec, e);
    // One message goes out in two writes (cut inside its prelude), so frames and reads do not line up.
    if (i === 2) {
      await write(bytes.subarray(0, 6));
      await write(bytes.subarray(6));
    } else {
      await write(bytes);
    }
    sent.push(bytes);
  }
  log({ seq: record.seq, kind: 'sent', eventStreamBase64: Buffer.concat(sent).toString('base64'), events });
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
    const raw = await readRaw(req);
    record.bodyText = decodeBody(req, raw);
    if (mode === 'bedrock') return await handleBedrock(req, res, record, raw, url);
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
