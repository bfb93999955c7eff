// A strict fake of OpenAI's Responses API serving a stateless reasoning model, for the end-to-end test (run.sh,
// scenario `openai-responses`). Node 20, no dependencies. Listens on 127.0.0.1 only.
//
// Usage: node fake-openai-responses.mjs --port 0 --log FILE --workdir DIR [--key K] [--model M]
// Prints `LISTENING <port>`. Every request is one JSON line in the log, written before the answer starts:
//   {seq, method, url, path, headers, bodyText, reply:{status, turn, reason?, planned?, checks?}}
// and, after a streamed answer, {seq, kind:"sent", sseBase64}.
//
// POST /v1/responses is validated as strictly as the real service does, and refused with OpenAI's 400 envelope
// ({"error":{"message","type":"invalid_request_error","param","code"}}) when:
//   - the bearer is not --key, the body is not JSON, or has a top-level member the Responses API does not know;
//   - `model` is not --model; `max_output_tokens` is below 16; `store` is not false (this deployment keeps nothing,
//     so the whole history, reasoning included, must come back every turn); `include` asks for anything but
//     `reasoning.encrypted_content`; `reasoning` has a member other than effort / summary or a value out of range;
//   - an input item has an unknown type or member: message {type?, role, content} (content a string or
//     input_text / input_image / output_text parts), function_call {type, call_id, name, arguments (JSON)},
//     function_call_output {type, call_id, output (a string or input_text / input_image parts)},
//     reasoning {type, id, summary, encrypted_content};
//   - a reasoning item's encrypted_content is not, byte for byte, what this fake issued with that id, or the item
//     has no following item (OpenAI's rule);
//   - a function_call this fake issued comes back without the reasoning item it was issued with before it (a
//     stateless reasoning model refuses a tool turn whose reasoning was not given back);
//   - a function_call_output answers no function_call given before it, or a call is left unanswered;
//   - a tool is not {type:"function", name ^[A-Za-z0-9_-]{1,64}$, description?, parameters?, strict?}.
// The conversation is fake-common.mjs's three turns, each with a reasoning item (summary streamed, encrypted
// content random base64 with + / =) before its text and calls; turn 2's two calls are two function_call items of one
// answer. reply.planned is what was answered, so checks compare captures, not constants.

import { option, makeLog, rand, serve, plannedTurn, split, writeFrames, TOOL_OUTPUT, NOTES_TEXT, tinyPng } from './fake-common.mjs';
import crypto from 'node:crypto';

const port = Number(option('port', 'FAKE_PORT', '0'));
const log = makeLog(option('log', 'FAKE_LOG', 'fake-openai-responses.jsonl'));
const workdir = option('workdir', 'FAKE_WORKDIR', '/nonexistent');
const KEY = option('key', 'FAKE_KEY', 'upstream-test-key');
const MODEL = option('model', 'FAKE_MODEL', 'gpt-5');

const TOP_LEVEL = new Set(['model', 'input', 'instructions', 'max_output_tokens', 'temperature', 'top_p', 'tools',
  'tool_choice', 'parallel_tool_calls', 'reasoning', 'text', 'store', 'include', 'stream', 'prompt_cache_key',
  'safety_identifier', 'user', 'metadata', 'truncation', 'service_tier', 'previous_response_id']);
const ITEM_KEYS = {
  message: new Set(['type', 'role', 'content', 'id', 'status']),
  function_call: new Set(['type', 'call_id', 'name', 'arguments', 'id', 'status']),
  function_call_output: new Set(['type', 'call_id', 'output', 'id', 'status']),
  reasoning: new Set(['type', 'id', 'summary', 'encrypted_content', 'content', 'status']),
};

// What this fake issued: reasoning id -> {encrypted, summary}; call id -> {reasoningId, name, args}.
const issuedReasoning = new Map();
const issuedCalls = new Map();

class Refusal extends Error {
  constructor(message, code = null) { super(message); this.code = code; }
}
const refuse = (msg, code) => { throw new Refusal(msg, code); };
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function checkParts(parts, where, allowed) {
  if (typeof parts === 'string') return;
  if (!Array.isArray(parts)) refuse(`Invalid type for '${where}': expected a string or an array of content parts.`, 'invalid_type');
  parts.forEach((p, i) => {
    const w = `${where}[${i}]`;
    if (!isObj(p) || !allowed.includes(p.type)) refuse(`Invalid value: '${p?.type}'. Supported values are: ${allowed.map((a) => `'${a}'`).join(', ')}. (${w}.type)`, 'invalid_value');
    const keys = p.type === 'input_image' ? ['type', 'image_url', 'detail', 'file_id'] : ['type', 'text', 'annotations'];
    for (const k of Object.keys(p)) if (!keys.includes(k)) refuse(`Unknown parameter: '${w}.${k}'.`, 'unknown_parameter');
    if (p.type === 'input_image' && !/^(data:image\/[a-z+.-]+;base64,[A-Za-z0-9+/=]+$|https?:\/\/)/.test(p.image_url ?? ''))
      refuse(`Invalid '${w}.image_url'. Expected a valid URL or a base64-encoded data URL.`, 'invalid_value');
    if (p.type !== 'input_image' && typeof p.text !== 'string') refuse(`Missing required parameter: '${w}.text'.`, 'missing_required_parameter');
  });
}

function validate(body) {
  if (!isObj(body)) refuse('We could not parse the JSON body of your request.');
  for (const k of Object.keys(body)) if (!TOP_LEVEL.has(k)) refuse(`Unknown parameter: '${k}'.`, 'unknown_parameter');
  if (body.model !== MODEL) refuse(`The requested model '${body.model}' does not exist.`, 'model_not_found');
  if (body.max_output_tokens !== undefined && !(Number.isInteger(body.max_output_tokens) && body.max_output_tokens >= 16))
    refuse(`Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got ${body.max_output_tokens} instead.`, 'integer_below_min_value');
  if (body.store !== false) refuse('This deployment does not store responses: send store=false and the whole history.');
  if (body.include !== undefined && (!Array.isArray(body.include) || body.include.some((i) => i !== 'reasoning.encrypted_content')))
    refuse("Invalid value for 'include'.", 'invalid_value');
  if (body.reasoning !== undefined) {
    if (!isObj(body.reasoning)) refuse("Invalid type for 'reasoning': expected an object.", 'invalid_type');
    for (const [k, v] of Object.entries(body.reasoning)) {
      const ok = (k === 'effort' && ['minimal', 'low', 'medium', 'high'].includes(v)) || (k === 'summary' && ['auto', 'concise', 'detailed'].includes(v));
      if (!ok) refuse(`Invalid value for 'reasoning.${k}'.`, 'invalid_value');
    }
  }
  for (const [i, t] of (body.tools ?? []).entries()) {
    if (!isObj(t) || t.type !== 'function') refuse(`Invalid value: '${t?.type}'. Supported values are: 'function', 'web_search', …. (tools[${i}].type)`, 'invalid_value');
    for (const k of Object.keys(t)) if (!['type', 'name', 'description', 'parameters', 'strict'].includes(k)) refuse(`Unknown parameter: 'tools[${i}].${k}'.`, 'unknown_parameter');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(t.name ?? '')) refuse(`Invalid 'tools[${i}].name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.`, 'invalid_value');
  }
  if (!Array.isArray(body.input) || body.input.length === 0) refuse("Missing required parameter: 'input'.", 'missing_required_parameter');
  const calls = new Set();
  const answered = new Set();
  body.input.forEach((item, i) => {
    const where = `input[${i}]`;
    const type = item?.type ?? 'message';
    const keys = ITEM_KEYS[type];
    if (!keys) refuse(`Invalid value: '${type}'. (${where}.type)`, 'invalid_value');
    for (const k of Object.keys(item)) if (!keys.has(k)) refuse(`Unknown parameter: '${where}.${k}'.`, 'unknown_parameter');
    if (type === 'message') {
      if (!['user', 'assistant', 'system', 'developer'].includes(item.role)) refuse(`Invalid value: '${item.role}'. (${where}.role)`, 'invalid_value');
      checkParts(item.content, `${where}.content`, item.role === 'assistant' ? ['output_text', 'refusal'] : ['input_text', 'input_image', 'input_file']);
    } else if (type === 'reasoning') {
      const issued = issuedReasoning.get(item.id);
      if (!Array.isArray(item.summary)) refuse(`Missing required parameter: '${where}.summary'.`, 'missing_required_parameter');
      if (!issued || item.encrypted_content !== issued.encrypted)
        refuse(`The encrypted content for item ${item.id} could not be verified.`, 'invalid_encrypted_content');
      const next = body.input[i + 1];
      if (!next || !['function_call', 'message', 'reasoning'].includes(next.type ?? 'message'))
        refuse(`Item '${item.id}' of type 'reasoning' was provided without its required following item.`);
    } else if (type === 'function_call') {
      if (typeof item.call_id !== 'string' || typeof item.name !== 'string' || typeof item.arguments !== 'string')
        refuse(`${where} must be {type:"function_call", call_id, name, arguments}.`, 'invalid_type');
      try { JSON.parse(item.arguments); } catch { refuse(`Invalid '${where}.arguments': not valid JSON.`, 'invalid_value'); }
      const issued = issuedCalls.get(item.call_id);
      if (issued && !body.input.slice(0, i).some((r) => r.type === 'reasoning' && r.id === issued.reasoningId))
        refuse(`Reasoning item '${issued.reasoningId}' that preceded function call '${item.call_id}' was not provided; pass it back when store is false.`);
      calls.add(item.call_id);
    } else if (type === 'function_call_output') {
      if (!calls.has(item.call_id)) refuse(`No tool call found for function call output with call_id ${item.call_id}.`);
      checkParts(item.output, `${where}.output`, ['input_text', 'input_image', 'input_file']);
      answered.add(item.call_id);
    }
  });
  const open = [...calls].filter((c) => !answered.has(c));
  if (open.length > 0) refuse(`No tool output found for function call ${open[0]}.`);
}

// What turns 2 and 3 must carry from the turns before: checked only after the request passed validation.
function historyChecks(body, turn) {
  const items = body.input;
  const calls = items.filter((it) => it.type === 'function_call');
  const outputs = items.filter((it) => it.type === 'function_call_output');
  const reasoning = items.filter((it) => it.type === 'reasoning');
  const text = (o) => (typeof o === 'string' ? o : (o ?? []).map((p) => p.text ?? '').join(''));
  const checks = {};
  checks.callIdsKnown = calls.length >= (turn === 2 ? 1 : 3) && calls.every((c) => issuedCalls.has(c.call_id));
  // every turn's reasoning item came back with the very encrypted content issued (validate refused anything else),
  // and right before its own turn's items: before the calls it was issued with, after the previous turn's outputs
  checks.reasoningEchoed = reasoning.length === turn - 1
    && reasoning.every((r) => r.encrypted_content === issuedReasoning.get(r.id)?.encrypted)
    && calls.every((c) => {
      const at = items.indexOf(c);
      const rAt = items.findIndex((it) => it.type === 'reasoning' && it.id === issuedCalls.get(c.call_id)?.reasoningId);
      return rAt >= 0 && rAt < at && items.slice(rAt + 1, at).every((it) => it.type !== 'function_call_output');
    });
  checks.argumentsIntact = calls.every((c) =>
    JSON.stringify(JSON.parse(c.arguments)) === JSON.stringify(issuedCalls.get(c.call_id)?.args) && c.name === issuedCalls.get(c.call_id)?.name);
  checks.bashOutput = text(outputs[0]?.output).includes(TOOL_OUTPUT);
  if (turn === 3) {
    // the two Read calls of turn 2: consecutive function_call items after the one reasoning item they were issued with
    const reads = calls.slice(1);
    checks.parallelCallsInOneStep = reads.length === 2
      && issuedCalls.get(reads[0].call_id)?.reasoningId === issuedCalls.get(reads[1].call_id)?.reasoningId
      && items.indexOf(reads[1]) === items.indexOf(reads[0]) + 1;
    checks.notesRead = outputs.slice(1).some((o) => text(o.output).includes(NOTES_TEXT));
    // the picture: an input_image part (a data: URL) in the Read output of pixel.png
    const images = outputs.slice(1).flatMap((o) => (Array.isArray(o.output) ? o.output : [])).filter((p) => p.type === 'input_image');
    const m = /^data:(image\/[a-z]+);base64,(.*)$/.exec(images[0]?.image_url ?? '');
    checks.imageAsDataUrl = images.length === 1 && m !== null;
    checks.imageBytesEqualFile = m !== null && Buffer.from(m[2], 'base64').equals(tinyPng());
  }
  checks.ok = Object.values(checks).every(Boolean);
  return checks;
}

function plan(turn) {
  const p = plannedTurn(turn, workdir);
  const reasoningId = `rs_${rand(12)}`;
  // random bytes in base64: + / = and all, as OpenAI's ciphertext looks
  const encrypted = 'gAAAAB' + crypto.randomBytes(96).toString('base64');
  const summary = p.reasoning || 'Done.';
  issuedReasoning.set(reasoningId, { encrypted, summary });
  const calls = p.calls.map((c) => ({ id: `fc_${rand(8)}`, callId: `call_${rand(12)}`, name: c.name, args: c.args }));
  for (const c of calls) issuedCalls.set(c.callId, { reasoningId, name: c.name, args: c.args });
  return { reasoningId, encrypted, summary, text: p.text, calls };
}

const USAGE = { input_tokens: 1200, input_tokens_details: { cached_tokens: 200 }, output_tokens: 80, output_tokens_details: { reasoning_tokens: 48 }, total_tokens: 1280 };

function outputItems(p) {
  const out = [{ type: 'reasoning', id: p.reasoningId, summary: [{ type: 'summary_text', text: p.summary }], encrypted_content: p.encrypted }];
  if (p.text) out.push({ type: 'message', id: `msg_${rand(8)}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: p.text, annotations: [] }] });
  for (const c of p.calls) out.push({ type: 'function_call', id: c.id, call_id: c.callId, name: c.name, arguments: JSON.stringify(c.args), status: 'completed' });
  return out;
}

// The events of a streamed answer, in OpenAI's order: created, then each output item added, its deltas, done.
function events(p, id) {
  const response = (status, output, usage) => ({ id, object: 'response', created_at: Math.floor(Date.now() / 1000), model: MODEL, status, output, usage });
  const out = [{ type: 'response.created', response: response('in_progress', [], null) }];
  const items = outputItems(p);
  items.forEach((item, index) => {
    if (item.type === 'reasoning') {
      out.push({ type: 'response.output_item.added', output_index: index, item: { type: 'reasoning', id: item.id, summary: [] } });
      out.push({ type: 'response.reasoning_summary_part.added', item_id: item.id, output_index: index, summary_index: 0, part: { type: 'summary_text', text: '' } });
      for (const d of split(item.summary[0].text, 3))
        out.push({ type: 'response.reasoning_summary_text.delta', item_id: item.id, output_index: index, summary_index: 0, delta: d });
      out.push({ type: 'response.reasoning_summary_text.done', item_id: item.id, output_index: index, summary_index: 0, text: item.summary[0].text });
      out.push({ type: 'response.output_item.done', output_index: index, item });
    } else if (item.type === 'message') {
      out.push({ type: 'response.output_item.added', output_index: index, item: { ...item, status: 'in_progress', content: [] } });
      out.push({ type: 'response.content_part.added', item_id: item.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
      for (const d of split(item.content[0].text, 2))
        out.push({ type: 'response.output_text.delta', item_id: item.id, output_index: index, content_index: 0, delta: d });
      out.push({ type: 'response.output_text.done', item_id: item.id, output_index: index, content_index: 0, text: item.content[0].text });
      out.push({ type: 'response.output_item.done', output_index: index, item });
    } else {
      out.push({ type: 'response.output_item.added', output_index: index, item: { ...item, arguments: '', status: 'in_progress' } });
      for (const d of split(item.arguments, 3))
        out.push({ type: 'response.function_call_arguments.delta', item_id: item.id, output_index: index, delta: d });
      out.push({ type: 'response.function_call_arguments.done', item_id: item.id, output_index: index, arguments: item.arguments });
      out.push({ type: 'response.output_item.done', output_index: index, item });
    }
  });
  out.push({ type: 'response.completed', response: response('completed', items, USAGE) });
  return out.map((e, n) => `event: ${e.type}\ndata: ${JSON.stringify({ ...e, sequence_number: n })}\n\n`);
}

function sendJson(res, status, obj) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(obj));
}

serve(port, log, async (req, res, record, url) => {
  if (req.method !== 'POST' || url.pathname !== '/v1/responses') {
    record.reply = { status: 404 };
    log(record);
    return sendJson(res, 404, { error: { message: `Invalid URL (${req.method} ${url.pathname})`, type: 'invalid_request_error', param: null, code: null } });
  }
  if (req.headers.authorization !== `Bearer ${KEY}`) {
    record.reply = { status: 401, reason: 'bearer' };
    log(record);
    return sendJson(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  }
  let body;
  try {
    try { body = JSON.parse(record.bodyText); } catch { refuse('We could not parse the JSON body of your request.'); }
    validate(body);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    record.reply = { status: 400, reason: err.message };
    log(record);
    return sendJson(res, 400, { error: { message: err.message, type: 'invalid_request_error', param: null, code: err.code } });
  }
  const outputs = body.input.filter((it) => it.type === 'function_call_output').length;
  const turn = outputs === 0 ? 1 : outputs === 1 ? 2 : 3;
  const checks = turn > 1 ? historyChecks(body, turn) : undefined;
  const p = plan(turn);
  const id = `resp_e2e${rand(8)}`;
  record.reply = {
    status: 200, turn, streaming: body.stream === true, checks, reasoning: body.reasoning ?? null,
    planned: { reasoning: p.summary, reasoningId: p.reasoningId, encrypted: p.encrypted, text: p.text, calls: p.calls.map((c) => ({ id: c.callId, name: c.name, args: c.args })) },
  };
  log(record);
  if (body.stream !== true) {
    return sendJson(res, 200, { id, object: 'response', created_at: Math.floor(Date.now() / 1000), model: MODEL, status: 'completed', output: outputItems(p), usage: USAGE });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const sent = await writeFrames(res, events(p, id));
  log({ seq: record.seq, kind: 'sent', sseBase64: sent.toString('base64') });
  res.end();
});
