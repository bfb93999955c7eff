// A strict fake of an OpenAI Chat Completions server in DeepSeek's thinking mode, for the end-to-end test
// (run.sh, scenario `openai-chat`). Node 20, no dependencies. Listens on 127.0.0.1 only.
//
// Usage: node fake-openai.mjs --port 0 --log FILE --workdir DIR [--key K] [--model M] [--fail-turn N]
//   --fail-turn N: turn N is answered 503 (server_error, "The server is overloaded") after validation, so a relay
//   fails over to its next provider (scenario `crossed-tool-loop`: back to the Anthropic-shaped one).
// Prints `LISTENING <port>`. Every request is one JSON line in the log, written before the answer starts:
//   {seq, method, url, path, headers, bodyText, reply:{status, turn, reason?, planned?, checks?}}
// and, after a streamed answer, {seq, kind:"sent", sseBase64}.
//
// POST /v1/chat/completions is validated as strictly as the real services do, and refused with OpenAI's 400
// envelope ({"error":{"message","type":"invalid_request_error","param","code"}}) when:
//   - the bearer is not --key, or the body is not JSON, or has a top-level member Chat Completions does not know;
//   - `model` is not --model; `stream_options` without `stream: true`;
//   - a message has an unknown role or member, a content part other than text / image_url (image_url needs a
//     `data:` or http(s) URL), an assistant tool call that is not {id, type:"function", function:{name, arguments}}
//     with JSON arguments;
//   - a `tool` message does not answer a call of the assistant message just before it, or an assistant's
//     tool_calls are not all answered before the next other message (OpenAI's rule);
//   - DeepSeek's thinking-mode rule: an assistant message with tool_calls must carry `reasoning_content`, and for
//     the calls this fake made it must be the reasoning it gave, byte for byte;
//   - a tool is not {type:"function", function:{name ^[A-Za-z0-9_-]{1,64}$, description?, parameters?, strict?}}.
// The conversation is fake-common.mjs's three turns; turn 2 interleaves the two tool calls' fragments (second call
// opened before the first one's arguments are complete), as servers may. reply.planned is what was answered
// (reasoning, text, calls with ids and arguments), so checks compare captures, not constants.

import { option, makeLog, rand, serve, plannedTurn, split, writeFrames, TOOL_OUTPUT, NOTES_TEXT, tinyPng } from './fake-common.mjs';

const port = Number(option('port', 'FAKE_PORT', '0'));
const log = makeLog(option('log', 'FAKE_LOG', 'fake-openai.jsonl'));
const workdir = option('workdir', 'FAKE_WORKDIR', '/nonexistent');
const KEY = option('key', 'FAKE_KEY', 'upstream-test-key');
const MODEL = option('model', 'FAKE_MODEL', 'deepseek-reasoner');
const FAIL_TURN = Number(option('fail-turn', 'FAKE_FAIL_TURN', '0'));

const TOP_LEVEL = new Set(['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens',
  'temperature', 'top_p', 'stop', 'tools', 'tool_choice', 'parallel_tool_calls', 'user', 'reasoning_effort',
  'response_format', 'frequency_penalty', 'presence_penalty', 'seed', 'n', 'logprobs', 'top_logprobs', 'thinking',
  'logit_bias', 'metadata', 'store', 'service_tier', 'modalities', 'prediction', 'audio', 'web_search_options']);
const MESSAGE_KEYS = {
  system: new Set(['role', 'content', 'name']),
  developer: new Set(['role', 'content', 'name']),
  user: new Set(['role', 'content', 'name']),
  assistant: new Set(['role', 'content', 'name', 'tool_calls', 'reasoning_content', 'refusal']),
  tool: new Set(['role', 'content', 'tool_call_id']),
};

// What this fake answered, by call id: the reasoning of that answer (DeepSeek wants it back).
const issuedCalls = new Map();

class Refusal extends Error {}
const refuse = (msg) => { throw new Refusal(msg); };
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function checkTextParts(content, where, allowImages) {
  if (typeof content === 'string') return;
  if (!Array.isArray(content)) refuse(`${where}.content must be a string or an array of content parts`);
  content.forEach((p, i) => {
    if (!isObj(p)) refuse(`${where}.content[${i}] is not an object`);
    if (p.type === 'text') {
      if (typeof p.text !== 'string') refuse(`${where}.content[${i}].text must be a string`);
      for (const k of Object.keys(p)) if (k !== 'type' && k !== 'text') refuse(`Unrecognized field ${where}.content[${i}].${k}`);
    } else if (p.type === 'image_url' && allowImages) {
      const url = p.image_url?.url;
      if (typeof url !== 'string' || !/^(data:image\/[a-z+.-]+;base64,[A-Za-z0-9+/=]+$|https?:\/\/)/.test(url))
        refuse(`${where}.content[${i}].image_url.url must be a data:image/...;base64 URL or an http(s) URL`);
    } else {
      refuse(`${where}.content[${i}].type ${JSON.stringify(p.type)} is not supported here`);
    }
  });
}

function validate(body) {
  if (!isObj(body)) refuse('We could not parse the JSON body of your request.');
  for (const k of Object.keys(body)) if (!TOP_LEVEL.has(k)) refuse(`Unrecognized request argument supplied: ${k}`);
  if (body.model !== MODEL) refuse(`The model \`${body.model}\` does not exist or you do not have access to it.`);
  if (body.stream_options !== undefined && body.stream !== true) refuse('The \'stream_options\' parameter is only allowed when \'stream\' is enabled.');
  if (!Array.isArray(body.messages) || body.messages.length === 0) refuse('\'messages\' must be a non-empty array');
  let pending = null; // the ids of the last assistant's tool_calls still unanswered
  body.messages.forEach((m, i) => {
    const where = `messages[${i}]`;
    const keys = MESSAGE_KEYS[m?.role];
    if (!keys) refuse(`${where}.role ${JSON.stringify(m?.role)} is not one of system, developer, user, assistant, tool`);
    for (const k of Object.keys(m)) if (!keys.has(k)) refuse(`Unrecognized field ${where}.${k}`);
    if (m.role === 'tool') {
      if (!pending || !pending.has(m.tool_call_id))
        refuse(`Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. (${where}, tool_call_id ${JSON.stringify(m.tool_call_id)})`);
      pending.delete(m.tool_call_id);
      checkTextParts(m.content, where, false);
      return;
    }
    if (pending && pending.size > 0)
      refuse(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`);
    pending = null;
    if (m.role === 'assistant') {
      if (m.content !== null && m.content !== undefined) checkTextParts(m.content, where, false);
      if (m.reasoning_content !== undefined && typeof m.reasoning_content !== 'string') refuse(`${where}.reasoning_content must be a string`);
      if (m.tool_calls !== undefined) {
        if (!Array.isArray(m.tool_calls) || m.tool_calls.length === 0) refuse(`${where}.tool_calls must be a non-empty array`);
        pending = new Set();
        m.tool_calls.forEach((tc, j) => {
          const w = `${where}.tool_calls[${j}]`;
          if (!isObj(tc) || typeof tc.id !== 'string' || tc.type !== 'function' || !isObj(tc.function)
              || typeof tc.function.name !== 'string' || typeof tc.function.arguments !== 'string')
            refuse(`${w} must be {id, type:"function", function:{name, arguments}}`);
          for (const k of Object.keys(tc)) if (!['id', 'type', 'function', 'index'].includes(k)) refuse(`Unrecognized field ${w}.${k}`);
          try { JSON.parse(tc.function.arguments); } catch { refuse(`${w}.function.arguments is not valid JSON`); }
          pending.add(tc.id);
        });
        // DeepSeek, thinking mode: a tool-call turn must give its reasoning_content back.
        if (typeof m.reasoning_content !== 'string')
          refuse(`Missing \`reasoning_content\` field in the assistant message at message index ${i}. For more information, please refer to https://api-docs.deepseek.com/guides/thinking_mode#tool-calls`);
        for (const tc of m.tool_calls) {
          const issued = issuedCalls.get(tc.id);
          if (issued && issued.reasoning !== m.reasoning_content)
            refuse(`${where}.reasoning_content is not the reasoning_content returned with tool call ${tc.id}`);
        }
      }
    } else {
      checkTextParts(m.content, where, m.role === 'user');
    }
  });
  if (pending && pending.size > 0)
    refuse(`An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`);
  for (const [i, t] of (body.tools ?? []).entries()) {
    if (!isObj(t) || t.type !== 'function' || !isObj(t.function)) refuse(`tools[${i}] must be {type:"function", function:{…}}`);
    for (const k of Object.keys(t)) if (k !== 'type' && k !== 'function') refuse(`Unrecognized field tools[${i}].${k}`);
    for (const k of Object.keys(t.function)) if (!['name', 'description', 'parameters', 'strict'].includes(k)) refuse(`Unrecognized field tools[${i}].function.${k}`);
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(t.function.name ?? '')) refuse(`Invalid 'tools[${i}].function.name': string does not match pattern '^[a-zA-Z0-9_-]+$'.`);
    if (t.function.parameters !== undefined && !isObj(t.function.parameters)) refuse(`tools[${i}].function.parameters must be an object`);
  }
}

// What turn 2 and 3 must carry from the turns before: checked only after the request passed validation.
function historyChecks(body, turn) {
  const msgs = body.messages;
  const tools = msgs.filter((m) => m.role === 'tool');
  const text = (c) => (typeof c === 'string' ? c : (c ?? []).map((p) => p.text ?? '').join(''));
  const checks = {};
  const assistants = msgs.filter((m) => m.role === 'assistant' && m.tool_calls);
  checks.callIdsKnown = assistants.length >= turn - 1 && assistants.every((a) => a.tool_calls.every((tc) => issuedCalls.has(tc.id)));
  checks.reasoningEchoed = assistants.every((a) => a.reasoning_content === issuedCalls.get(a.tool_calls[0].id)?.reasoning);
  checks.argumentsIntact = assistants.every((a) => a.tool_calls.every((tc) =>
    JSON.stringify(JSON.parse(tc.function.arguments)) === JSON.stringify(issuedCalls.get(tc.id)?.args) && tc.function.name === issuedCalls.get(tc.id)?.name));
  checks.bashOutput = text(tools[0]?.content).includes(TOOL_OUTPUT);
  if (turn === 3) {
    checks.parallelCallsInOneMessage = assistants.length === 2 && assistants[1].tool_calls.length === 2;
    // Claude Code runs parallel tools concurrently and may give their results in either order
    checks.notesRead = tools.slice(1).some((t) => text(t.content).includes(NOTES_TEXT));
    // the picture: an image_url part with a data: URL in a user message after the tool messages (a tool message holds text only)
    const lastTool = msgs.lastIndexOf(tools[tools.length - 1]);
    const images = msgs.slice(lastTool + 1).filter((m) => m.role === 'user' && Array.isArray(m.content))
      .flatMap((m) => m.content.filter((p) => p.type === 'image_url'));
    const m = /^data:(image\/[a-z]+);base64,(.*)$/.exec(images[0]?.image_url?.url ?? '');
    checks.imageAsDataUrl = images.length === 1 && m !== null;
    checks.imageBytesEqualFile = m !== null && Buffer.from(m[2], 'base64').equals(tinyPng());
  }
  checks.ok = Object.values(checks).every(Boolean);
  return checks;
}

function plan(turn) {
  const p = plannedTurn(turn, workdir);
  const calls = p.calls.map((c) => ({ id: `call_${rand(12)}`, name: c.name, args: c.args }));
  for (const c of calls) issuedCalls.set(c.id, { reasoning: p.reasoning, name: c.name, args: c.args });
  return { reasoning: p.reasoning, text: p.text, calls, finish: calls.length ? 'tool_calls' : 'stop' };
}

const USAGE = { prompt_tokens: 1200, completion_tokens: 80, total_tokens: 1280, prompt_tokens_details: { cached_tokens: 200 } };

// The chunks of a streamed answer. Turn 2's two calls are interleaved: call 0 opens, gets half its arguments, call 1
// opens and gets half of its own, then both finish.
function chunks(p, id) {
  const base = { id, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: MODEL, system_fingerprint: 'fp_e2e' };
  const chunk = (delta, finish = null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const out = [chunk({ role: 'assistant', content: null, reasoning_content: '' })];
  for (const r of split(p.reasoning, 3)) out.push(chunk({ reasoning_content: r }));
  for (const t of split(p.text, 2)) out.push(chunk({ content: t }));
  const frags = p.calls.map((c) => split(JSON.stringify(c.args), 2));
  const head = (i) => chunk({ tool_calls: [{ index: i, id: p.calls[i].id, type: 'function', function: { name: p.calls[i].name, arguments: '' } }] });
  const args = (i, a) => chunk({ tool_calls: [{ index: i, function: { arguments: a } }] });
  if (p.calls.length === 2) {
    out.push(head(0), args(0, frags[0][0]), head(1), args(1, frags[1][0]));
    for (const a of frags[0].slice(1)) out.push(args(0, a));
    for (const a of frags[1].slice(1)) out.push(args(1, a));
  } else {
    p.calls.forEach((_, i) => { out.push(head(i)); for (const a of frags[i]) out.push(args(i, a)); });
  }
  out.push(chunk({}, p.finish));
  out.push({ ...base, choices: [], usage: USAGE });
  return [...out.map((c) => `data: ${JSON.stringify(c)}\n\n`), 'data: [DONE]\n\n'];
}

function completion(p, id) {
  return {
    id, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model: MODEL,
    choices: [{
      index: 0, finish_reason: p.finish, logprobs: null,
      message: {
        role: 'assistant', content: p.text || null, reasoning_content: p.reasoning || undefined,
        tool_calls: p.calls.length ? p.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args) } })) : undefined,
      },
    }],
    usage: USAGE,
  };
}

function sendJson(res, status, obj) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(obj));
}

serve(port, log, async (req, res, record, url) => {
  if (req.method !== 'POST' || url.pathname !== '/v1/chat/completions') {
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
    return sendJson(res, 400, { error: { message: err.message, type: 'invalid_request_error', param: null, code: null } });
  }
  const toolMessages = body.messages.filter((m) => m.role === 'tool').length;
  const turn = toolMessages === 0 ? 1 : toolMessages === 1 ? 2 : 3;
  if (turn === FAIL_TURN) {
    record.reply = { status: 503, turn, overloaded: true };
    log(record);
    return sendJson(res, 503, { error: { message: 'The server is overloaded, please try again later.', type: 'server_error', param: null, code: null } });
  }
  const checks = turn > 1 ? historyChecks(body, turn) : undefined;
  const p = plan(turn);
  const id = `chatcmpl-e2e${rand(8)}`;
  record.reply = { status: 200, turn, streaming: body.stream === true, planned: p, checks, thinking: body.thinking ?? null };
  log(record);
  if (body.stream !== true) return sendJson(res, 200, completion(p, id));
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  const sent = await writeFrames(res, chunks(p, id));
  log({ seq: record.seq, kind: 'sent', sseBase64: sent.toString('base64') });
  res.end();
});
