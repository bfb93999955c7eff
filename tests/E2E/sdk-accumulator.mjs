// The official Anthropic TypeScript SDK's stream accumulator over a translated stream (run.sh, scenarios
// `openai-chat` and `gemini`): `client.messages.stream(...).finalMessage()` through the relay to a translated fake,
// for the fake's whole three-turn conversation (thinking + tool call; two parallel tool calls; text), each next turn
// built from the SDK's own final message (its thinking blocks and signatures given back as they came) plus the
// tool results (turn 2's second result an image).
//
// Usage: node sdk-accumulator.mjs --sdk-from DIR --base-url URL --key K --model M --log FAKE_LOG --workdir DIR
//   --sdk-from: a directory whose node_modules holds @anthropic-ai/sdk (tests/E2E/.work/cc, the pinned install)
// After each turn it reads what the fake answered (the last `reply.planned` in its log) and compares it with the
// final message: the thinking text, the text, every tool_use's name and input (deep-equal to the arguments the fake
// sent; for OpenAI the ids too), the stop reason. Prints one JSON object {ok, sdkVersion, turns:[{turn, ok, problems}]}
// and exits 0 when every turn matched, 1 otherwise.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import { option, TOOL_OUTPUT, NOTES_TEXT, tinyPng } from './fake-common.mjs';

const from = option('sdk-from', 'SDK_FROM', '.');
const require = createRequire(`${from.replace(/\/?$/, '/')}package.json`);
const sdk = require('@anthropic-ai/sdk');
const Anthropic = sdk.Anthropic ?? sdk.default;
const sdkVersion = JSON.parse(fs.readFileSync(`${from.replace(/\/?$/, '/')}node_modules/@anthropic-ai/sdk/package.json`, 'utf8')).version;

const logPath = option('log', 'FAKE_LOG', '');
const model = option('model', 'SDK_MODEL', 'claude-sonnet-4-6');
const client = new Anthropic({ baseURL: option('base-url', 'SDK_BASE_URL', ''), apiKey: option('key', 'SDK_KEY', 'sk-ant-e2e-client'), maxRetries: 0, timeout: 30_000 });

const tools = [
  { name: 'Bash', description: 'Run a shell command', input_schema: { type: 'object', properties: { command: { type: 'string' }, description: { type: 'string' } }, required: ['command'], additionalProperties: false, $schema: 'https://json-schema.org/draft/2020-12/schema' } },
  { name: 'Read', description: 'Read a file', input_schema: { type: 'object', properties: { file_path: { type: 'string' }, limit: { type: 'integer', exclusiveMinimum: 0 } }, required: ['file_path'], additionalProperties: false } },
];

function lastPlanned() {
  const recs = fs.readFileSync(logPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return recs.filter((r) => r.reply?.planned).at(-1)?.reply;
}

const deepEqual = (a, b) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

function compare(msg, reply) {
  const problems = [];
  const p = reply.planned;
  const thinking = msg.content.filter((b) => b.type === 'thinking');
  const text = msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  const uses = msg.content.filter((b) => b.type === 'tool_use');
  if (p.reasoning && thinking.map((b) => b.thinking).join('') !== p.reasoning) problems.push(`thinking ${JSON.stringify(thinking.map((b) => b.thinking))} != ${JSON.stringify(p.reasoning)}`);
  if (text !== p.text) problems.push(`text ${JSON.stringify(text)} != ${JSON.stringify(p.text)}`);
  if (uses.length !== p.calls.length) problems.push(`${uses.length} tool_use blocks, the fake sent ${p.calls.length} calls`);
  p.calls.forEach((c, i) => {
    const u = uses[i];
    if (!u) return;
    if (u.name !== c.name) problems.push(`tool_use[${i}].name ${u.name} != ${c.name}`);
    if (!deepEqual(u.input, c.args)) problems.push(`tool_use[${i}].input ${JSON.stringify(u.input)} != ${JSON.stringify(c.args)}`);
    if (c.id && u.id !== c.id) problems.push(`tool_use[${i}].id ${u.id} != ${c.id}`);
  });
  const wantStop = p.calls.length ? 'tool_use' : 'end_turn';
  if (msg.stop_reason !== wantStop) problems.push(`stop_reason ${msg.stop_reason} != ${wantStop}`);
  if (!(msg.usage?.output_tokens > 0)) problems.push(`usage.output_tokens ${msg.usage?.output_tokens}`);
  // the blocks' order: thinking first, then text, then the tool calls
  const order = msg.content.map((b) => b.type).filter((t) => t !== 'thinking' || p.reasoning);
  const firstUse = order.indexOf('tool_use');
  if (firstUse >= 0 && order.slice(firstUse).some((t) => t !== 'tool_use')) problems.push(`block order ${order.join(',')}`);
  return problems;
}

const messages = [{ role: 'user', content: 'Run the end-to-end test command with the Bash tool, then report the result.' }];
const turns = [];
for (let turn = 1; turn <= 3; turn++) {
  let msg;
  const problems = [];
  let events = 0;
  try {
    const stream = client.messages.stream({ model, max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 }, tools, messages });
    stream.on('streamEvent', () => { events++; });
    msg = await stream.finalMessage();
  } catch (err) {
    problems.push(`stream failed: ${err?.message ?? err}`);
  }
  const reply = lastPlanned();
  if (msg && reply?.turn !== turn) problems.push(`the fake answered turn ${reply?.turn}, expected ${turn} (its checks: ${JSON.stringify(reply?.checks)})`);
  if (msg && reply?.turn === turn) problems.push(...compare(msg, reply));
  if (reply?.checks && reply.checks.ok !== true) problems.push(`the fake's history checks failed: ${JSON.stringify(reply.checks)}`);
  turns.push({ turn, ok: problems.length === 0, events, content: msg?.content?.map((b) => b.type), problems });
  if (!msg || problems.length) break;
  if (turn === 3) break;
  messages.push({ role: 'assistant', content: msg.content });
  const uses = msg.content.filter((b) => b.type === 'tool_use');
  const results = uses.map((u) => {
    if (u.name === 'Bash') return { type: 'tool_result', tool_use_id: u.id, content: `${TOOL_OUTPUT}\n` };
    if (String(u.input.file_path).endsWith('.png'))
      return { type: 'tool_result', tool_use_id: u.id, content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: tinyPng().toString('base64') } }] };
    return { type: 'tool_result', tool_use_id: u.id, content: `1\t${NOTES_TEXT}\n` };
  });
  messages.push({ role: 'user', content: results });
}
const ok = turns.length === 3 && turns.every((t) => t.ok);
console.log(JSON.stringify({ ok, sdkVersion, turns }));
process.exit(ok ? 0 : 1);
