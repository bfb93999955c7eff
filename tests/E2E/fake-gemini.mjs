// A strict fake of the Gemini API (Google AI Studio, a Gemini 3 model with thinking), for the end-to-end test
// (run.sh, scenario `gemini`). Node 20, no dependencies. Listens on 127.0.0.1 only.
//
// Usage: node fake-gemini.mjs --port 0 --log FILE --workdir DIR [--key K] [--model M]
// Prints `LISTENING <port>`. Every request is one JSON line in the log, written before the answer starts:
//   {seq, method, url, path, headers, bodyText, reply:{status, turn, reason?, planned?, checks?}}
// and, after a streamed answer, {seq, kind:"sent", sseBase64}.
//
// POST /v1beta/models/{--model}:streamGenerateContent?alt=sse (and :generateContent, :countTokens) is validated as
// strictly as Gemini does, and refused with Google's 400 envelope ({"error":{"code":400,"message","status":
// "INVALID_ARGUMENT"}}) when:
//   - x-goog-api-key is not --key; the body has an unknown member anywhere Gemini checks (top level, contents, parts,
//     generationConfig, thinkingConfig, toolConfig, tools, function declarations, schemas): "Invalid JSON payload
//     received. Unknown name …";
//   - a content's role is not user/model, a part does not hold exactly one kind of data, a text part is empty;
//   - a schema keyword Gemini rejects ($schema, additionalProperties, …), a type outside its enum, an OBJECT
//     `parameters` without properties, `required` naming an undefined property;
//   - a user turn with functionResponse parts does not follow a model turn with as many functionCall parts, names
//     in order (Gemini's "number of function response parts is equal to the number of function call parts");
//   - Gemini 3's rule: in the current turn (the contents after the last user text), the first functionCall of each
//     model step carries a thoughtSignature, and for the calls this fake made it is the signature it gave, byte
//     for byte (or the documented `skip_thought_signature_validator`).
// The conversation is fake-common.mjs's three turns: thought parts (thought:true), text, functionCall parts (the
// signature on each step's first call, as Gemini 3 sends it; both turn-2 calls in one chunk, as Gemini does).
// reply.planned is what was answered, so checks compare captures, not constants.

import crypto from 'node:crypto';
import { option, makeLog, rand, serve, plannedTurn, split, writeFrames, TOOL_OUTPUT, NOTES_TEXT, tinyPng } from './fake-common.mjs';

const port = Number(option('port', 'FAKE_PORT', '0'));
const log = makeLog(option('log', 'FAKE_LOG', 'fake-gemini.jsonl'));
const workdir = option('workdir', 'FAKE_WORKDIR', '/nonexistent');
const KEY = option('key', 'FAKE_KEY', 'gemini-test-key');
const MODEL = option('model', 'FAKE_MODEL', 'gemini-3-pro-preview');
const SKIP = 'skip_thought_signature_validator';

class Refusal extends Error {}
const refuse = (msg) => { throw new Refusal(msg); };
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const known = (obj, allowed, where) => {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) refuse(`Invalid JSON payload received. Unknown name "${k}" at '${where}': Cannot find field.`);
};

// signature -> the call names of the step it came with
const issuedSignatures = new Map();

const SCHEMA_KEYS = ['type', 'format', 'title', 'description', 'nullable', 'enum', 'maxItems', 'minItems', 'properties',
  'required', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'pattern', 'example', 'anyOf',
  'propertyOrdering', 'default', 'items', 'minimum', 'maximum'];
const TYPES = ['STRING', 'NUMBER', 'INTEGER', 'BOOLEAN', 'ARRAY', 'OBJECT', 'NULL'];

function checkSchema(s, where) {
  if (!isObj(s)) refuse(`${where}: a schema must be an object`);
  known(s, SCHEMA_KEYS, where);
  if (s.type !== undefined && !TYPES.includes(String(s.type).toUpperCase())) refuse(`Invalid value at '${where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "${s.type}"`);
  if (s.properties !== undefined) {
    if (!isObj(s.properties)) refuse(`${where}.properties must be an object`);
    for (const [k, v] of Object.entries(s.properties)) checkSchema(v, `${where}.properties[${k}].value`);
  }
  if (s.required !== undefined) {
    for (const r of s.required) if (!s.properties || !(r in s.properties)) refuse(`${where}.required[${r}]: property is not defined`);
  }
  if (s.items !== undefined) checkSchema(s.items, `${where}.items`);
  for (const [i, a] of (s.anyOf ?? []).entries()) checkSchema(a, `${where}.any_of[${i}]`);
}

const PART_DATA = ['text', 'inlineData', 'fileData', 'functionCall', 'functionResponse', 'executableCode', 'codeExecutionResult'];

function validate(body) {
  if (!isObj(body)) refuse('Invalid JSON payload received.');
  known(body, ['contents', 'systemInstruction', 'tools', 'toolConfig', 'generationConfig', 'safetySettings', 'cachedContent', 'labels'], '');
  if (!Array.isArray(body.contents) || body.contents.length === 0) refuse('* GenerateContentRequest.contents: contents is not specified');
  const parts = (c, where) => {
    if (!isObj(c)) refuse(`${where} is not an object`);
    known(c, ['role', 'parts'], where);
    if (!Array.isArray(c.parts) || c.parts.length === 0) refuse(`* GenerateContentRequest.${where}.parts: contents.parts must not be empty.`);
    c.parts.forEach((p, j) => {
      const w = `${where}.parts[${j}]`;
      known(p, [...PART_DATA, 'thought', 'thoughtSignature', 'videoMetadata'], w);
      const kinds = PART_DATA.filter((k) => p[k] !== undefined);
      if (kinds.length !== 1) refuse(`${w}: a part must hold exactly one of ${PART_DATA.join(', ')} (has ${kinds.join(', ') || 'none'})`);
      if (p.text !== undefined && (typeof p.text !== 'string' || p.text === '')) refuse('Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again.');
      if (p.inlineData !== undefined) {
        known(p.inlineData, ['mimeType', 'data'], `${w}.inline_data`);
        if (typeof p.inlineData.mimeType !== 'string' || !/^[A-Za-z0-9+/]+=*$/.test(p.inlineData.data ?? '')) refuse(`${w}.inline_data: mimeType and base64 data required`);
      }
      if (p.functionCall !== undefined) {
        known(p.functionCall, ['name', 'args', 'id'], `${w}.function_call`);
        if (typeof p.functionCall.name !== 'string' || (p.functionCall.args !== undefined && !isObj(p.functionCall.args))) refuse(`${w}.function_call: name and object args required`);
      }
      if (p.functionResponse !== undefined) {
        known(p.functionResponse, ['name', 'response', 'id'], `${w}.function_response`);
        if (typeof p.functionResponse.name !== 'string' || !isObj(p.functionResponse.response)) refuse(`${w}.function_response: name and object response required`);
      }
      if (p.thoughtSignature !== undefined && typeof p.thoughtSignature !== 'string') refuse(`${w}.thought_signature must be bytes (base64)`);
    });
  };
  if (body.systemInstruction !== undefined) parts(body.systemInstruction, 'system_instruction');
  body.contents.forEach((c, i) => {
    parts(c, `contents[${i}]`);
    if (c.role !== 'user' && c.role !== 'model') refuse(`Please use a valid role: user, model. (contents[${i}].role ${JSON.stringify(c.role)})`);
  });
  // functionResponse turns answer the functionCall turn just before them, as many, names in order
  body.contents.forEach((c, i) => {
    const responses = c.parts.filter((p) => p.functionResponse);
    if (responses.length === 0) return;
    const prev = body.contents[i - 1];
    const calls = prev?.role === 'model' ? prev.parts.filter((p) => p.functionCall) : [];
    if (calls.length !== responses.length || calls.some((p, j) => p.functionCall.name !== responses[j].functionResponse.name))
      refuse('Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn.');
  });
  // Gemini 3: the current turn's steps carry their signatures
  let start = 0;
  body.contents.forEach((c, i) => { if (c.role === 'user' && !c.parts.some((p) => p.functionResponse)) start = i; });
  body.contents.slice(start).forEach((c, k) => {
    if (c.role !== 'model') return;
    const first = c.parts.find((p) => p.functionCall);
    if (!first) return;
    const position = start + k;
    if (first.thoughtSignature === undefined)
      refuse(`Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${first.functionCall.name}\` , position ${position}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.`);
    if (first.thoughtSignature !== SKIP && !issuedSignatures.has(first.thoughtSignature))
      refuse(`Corrupted thought signature. (contents[${position}])`);
  });
  if (body.generationConfig !== undefined) {
    known(body.generationConfig, ['temperature', 'topP', 'topK', 'candidateCount', 'maxOutputTokens', 'stopSequences',
      'responseMimeType', 'responseSchema', 'responseJsonSchema', 'presencePenalty', 'frequencyPenalty', 'seed',
      'thinkingConfig', 'responseModalities', 'mediaResolution'], 'generation_config');
    if (body.generationConfig.thinkingConfig !== undefined)
      known(body.generationConfig.thinkingConfig, ['includeThoughts', 'thinkingBudget', 'thinkingLevel'], 'generation_config.thinking_config');
  }
  if (body.toolConfig !== undefined) {
    known(body.toolConfig, ['functionCallingConfig'], 'tool_config');
    known(body.toolConfig.functionCallingConfig ?? {}, ['mode', 'allowedFunctionNames'], 'tool_config.function_calling_config');
  }
  for (const [i, t] of (body.tools ?? []).entries()) {
    known(t, ['functionDeclarations', 'googleSearch', 'codeExecution', 'urlContext'], `tools[${i}]`);
    for (const [j, f] of (t.functionDeclarations ?? []).entries()) {
      const w = `tools[${i}].function_declarations[${j}]`;
      known(f, ['name', 'description', 'parameters', 'parametersJsonSchema', 'response', 'behavior'], w);
      if (!/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/.test(f.name ?? '')) refuse(`* GenerateContentRequest.${w}.name: Invalid function name.`);
      if (f.parameters !== undefined) {
        checkSchema(f.parameters, `${w}.parameters`);
        if (String(f.parameters.type).toUpperCase() === 'OBJECT' && Object.keys(f.parameters.properties ?? {}).length === 0)
          refuse(`* GenerateContentRequest.${w}.parameters.properties: should be non-empty for OBJECT type`);
      }
    }
  }
}

function historyChecks(body, turn) {
  const c = body.contents;
  const responses = c.flatMap((x) => x.parts.filter((p) => p.functionResponse).map((p) => p.functionResponse));
  const modelSteps = c.filter((x) => x.role === 'model' && x.parts.some((p) => p.functionCall));
  const out = (r) => JSON.stringify(r?.response ?? null);
  const checks = {};
  checks.signaturesEchoed = modelSteps.length === turn - 1
    && modelSteps.every((s) => issuedSignatures.has(s.parts.find((p) => p.functionCall).thoughtSignature));
  checks.callsIntact = modelSteps.every((s) => {
    const calls = s.parts.filter((p) => p.functionCall).map((p) => p.functionCall);
    const issued = issuedSignatures.get(s.parts.find((p) => p.functionCall).thoughtSignature);
    return issued !== undefined && JSON.stringify(calls.map((x) => [x.name, x.args])) === JSON.stringify(issued.map((x) => [x.name, x.args]));
  });
  checks.bashOutput = out(responses[0]).includes(TOOL_OUTPUT);
  if (turn === 3) {
    checks.parallelCallsInOneStep = modelSteps.length === 2 && modelSteps[1].parts.filter((p) => p.functionCall).length === 2;
    // Claude Code runs parallel tools concurrently and may give their results in either order
    checks.notesRead = responses.slice(1).some((r) => out(r).includes(NOTES_TEXT));
    const last = c[c.length - 1];
    const images = last.role === 'user' ? last.parts.filter((p) => p.inlineData && p.inlineData.mimeType.startsWith('image/')) : [];
    checks.imageAsInlineData = images.length === 1;
    checks.imageBytesEqualFile = images.length === 1 && Buffer.from(images[0].inlineData.data, 'base64').equals(tinyPng());
  }
  checks.ok = Object.values(checks).every(Boolean);
  return checks;
}

function plan(turn) {
  const p = plannedTurn(turn, workdir);
  // Base64 like a real signature: '+', '/' and '=' catch a relay that re-escapes JSON strings.
  const signature = p.calls.length ? `${crypto.randomBytes(48).toString('base64')}+/==` : undefined;
  if (signature) issuedSignatures.set(signature, p.calls);
  return { ...p, signature, finish: 'STOP' };
}

const usage = { promptTokenCount: 1200, candidatesTokenCount: 60, thoughtsTokenCount: 20, totalTokenCount: 1280, cachedContentTokenCount: 200 };

// The parts of the answer, in the chunks they stream in: thoughts in pieces, text in pieces, all calls in one chunk.
function chunkParts(p) {
  const out = split(p.reasoning, 3).map((t) => [{ text: t, thought: true }]);
  for (const t of split(p.text, 2)) out.push([{ text: t }]);
  if (p.calls.length)
    out.push(p.calls.map((c, i) => ({ functionCall: { name: c.name, args: c.args }, ...(i === 0 ? { thoughtSignature: p.signature } : {}) })));
  return out;
}

function sseFrames(p, responseId) {
  const parts = chunkParts(p);
  const frames = parts.map((ps, i) => {
    const last = i === parts.length - 1;
    const chunk = {
      candidates: [{ content: { parts: ps, role: 'model' }, index: 0, ...(last ? { finishReason: p.finish } : {}) }],
      usageMetadata: last ? usage : { promptTokenCount: 1200, totalTokenCount: 1200 },
      modelVersion: MODEL, responseId,
    };
    return `data: ${JSON.stringify(chunk)}\r\n\r\n`;
  });
  return frames;
}

function sendJson(res, status, obj) {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(obj));
}
const googleError = (res, code, status, message) => sendJson(res, code, { error: { code, message, status } });

serve(port, log, async (req, res, record, url) => {
  const route = /^\/v1beta\/models\/([^/:]+):(streamGenerateContent|generateContent|countTokens)$/.exec(url.pathname);
  if (req.method !== 'POST' || !route) {
    record.reply = { status: 404 };
    log(record);
    return googleError(res, 404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
  }
  if (req.headers['x-goog-api-key'] !== KEY) {
    record.reply = { status: 400, reason: 'api key' };
    log(record);
    return googleError(res, 400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.');
  }
  const [, model, method] = route;
  if (model !== MODEL) {
    record.reply = { status: 404, reason: `model ${model}` };
    log(record);
    return googleError(res, 404, 'NOT_FOUND', `models/${model} is not found for API version v1beta, or is not supported for generateContent.`);
  }
  let body;
  try {
    try { body = JSON.parse(record.bodyText); } catch { refuse('Invalid JSON payload received.'); }
    if (method === 'countTokens') {
      record.reply = { status: 200, countTokens: true };
      log(record);
      return sendJson(res, 200, { totalTokens: 1234 });
    }
    if (method === 'streamGenerateContent' && url.searchParams.get('alt') !== 'sse') refuse('streamGenerateContent without alt=sse (this fake speaks SSE only)');
    validate(body);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    record.reply = { status: 400, reason: err.message };
    log(record);
    return googleError(res, 400, 'INVALID_ARGUMENT', err.message);
  }
  const responses = body.contents.flatMap((c) => c.parts.filter((p) => p.functionResponse)).length;
  const turn = responses === 0 ? 1 : responses === 1 ? 2 : 3;
  const checks = turn > 1 ? historyChecks(body, turn) : undefined;
  const p = plan(turn);
  const responseId = `e2e${rand(8)}`;
  const streaming = method === 'streamGenerateContent';
  record.reply = { status: 200, turn, streaming, planned: p, checks, thinkingConfig: body.generationConfig?.thinkingConfig ?? null };
  log(record);
  if (!streaming) {
    const all = chunkParts(p).flat();
    return sendJson(res, 200, { candidates: [{ content: { parts: all, role: 'model' }, finishReason: p.finish, index: 0 }], usageMetadata: usage, modelVersion: MODEL, responseId });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const sent = await writeFrames(res, sseFrames(p, responseId));
  log({ seq: record.seq, kind: 'sent', sseBase64: sent.toString('base64') });
  res.end();
});
