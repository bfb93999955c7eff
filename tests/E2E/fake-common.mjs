// Shared by the translated-target fakes (fake-openai.mjs, fake-gemini.mjs): options, the JSONL capture, request
// reading, the scripted three-turn conversation both play, and the server loop. Node 20, no dependencies.
// Listens on 127.0.0.1 only and prints exactly one line `LISTENING <port>` once it accepts connections.

import http from 'node:http';
import fs from 'node:fs';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import path from 'node:path';

export function option(name, envName, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[envName] ?? fallback;
}

export const rand = (n) => crypto.randomBytes(n).toString('hex');

export function makeLog(logPath) {
  return (record) => fs.appendFileSync(logPath, JSON.stringify(record) + '\n');
}

async function readRaw(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

function decodeBody(req, raw) {
  const enc = (req.headers['content-encoding'] || '').trim().toLowerCase();
  if (enc === 'gzip') return zlib.gunzipSync(raw).toString('utf8');
  if (enc === 'deflate') return zlib.inflateSync(raw).toString('utf8');
  if (enc === 'br') return zlib.brotliDecompressSync(raw).toString('utf8');
  return raw.toString('utf8');
}

// ---- the scripted conversation ------------------------------------------------------------------------------
//
// turn 1 (no tool result yet): reasoning + a short text + one Bash call `echo relay-e2e-ok`.
// turn 2 (one tool result):    reasoning + two calls in one answer (parallel): Read of notes.txt and of pixel.png
//                              in the work dir (--workdir), so Claude Code sends an image back.
// turn 3 (three tool results): the text E2E-DONE.
// Each fake checks, before answering turns 2 and 3, that the history carries what it gave (its reasoning in its
// own echo format, its call ids or names and arguments, the tool outputs, the image in its own format).

export const TOOL_OUTPUT = 'relay-e2e-ok';
export const NOTES_TEXT = 'notes-e2e-marker: the second file';
export const FINAL_TEXT = 'E2E-DONE';
// Non-ASCII on purpose: the reasoning is echoed back and must survive byte for byte.
export const REASONING = [
  'First run the command — then report. café ✓',
  'Now read both files at once: the notes and the picture ✓',
];

export function plannedTurn(turn, workdir) {
  if (turn === 1) {
    return {
      reasoning: REASONING[0],
      text: 'I will run the command now.',
      calls: [{ name: 'Bash', args: { command: `echo ${TOOL_OUTPUT}`, description: 'Print the e2e marker' } }],
    };
  }
  if (turn === 2) {
    return {
      reasoning: REASONING[1],
      text: '',
      calls: [
        { name: 'Read', args: { file_path: path.join(workdir, 'notes.txt') } },
        { name: 'Read', args: { file_path: path.join(workdir, 'pixel.png') } },
      ],
    };
  }
  return { reasoning: '', text: `${FINAL_TEXT}: the command printed ${TOOL_OUTPUT} and both files were read.`, calls: [] };
}

// A 2x2 PNG (opaque red), written into the work dir by run.sh through `node fake-common.mjs png FILE`.
export function tinyPng() {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(2, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.from([0, 255, 0, 0, 255, 0, 0]);
  const raw = Buffer.concat([row, row]);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// Splits a string into `n` pieces of roughly equal length (by code point, so no piece splits a character).
export function split(s, n) {
  const cps = Array.from(s);
  const size = Math.max(1, Math.ceil(cps.length / n));
  const parts = [];
  for (let i = 0; i < cps.length; i += size) parts.push(cps.slice(i, i + size).join(''));
  return parts;
}

// Writes the SSE frames one by one, each awaited to the socket; the frame whose UTF-8 bytes hold a '✓' goes out in
// two writes cut inside that 3-byte character. Returns the exact bytes sent.
export async function writeFrames(res, frames) {
  const write = (b) => new Promise((resolve, reject) => res.write(b, (err) => (err ? reject(err) : resolve())));
  const sent = [];
  for (const f of frames) {
    const bytes = Buffer.from(f, 'utf8');
    const check = bytes.indexOf('✓');
    if (check >= 0) {
      await write(bytes.subarray(0, check + 1));
      await write(bytes.subarray(check + 1));
    } else {
      await write(bytes);
    }
    sent.push(bytes);
  }
  return Buffer.concat(sent);
}

// The server loop: handler(req, res, record, url) answers; every request is logged once (by the handler, before
// its answer starts). HEAD / gets 200 (Claude Code's preconnect goes to the relay, not here, but be lenient).
export function serve(port, log, handler) {
  let seq = 0;
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://fake');
    const record = {
      seq: ++seq, time: new Date().toISOString(), method: req.method, url: req.url, path: url.pathname,
      headers: req.headers,
    };
    try {
      record.bodyText = decodeBody(req, await readRaw(req));
      await handler(req, res, record, url);
    } catch (err) {
      record.failure = String(err?.stack ?? err);
      log(record);
      res.destroy();
    }
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`LISTENING ${server.address().port}\n`));
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      server.close();
      server.closeAllConnections();
      process.exit(0);
    });
  }
}

if (process.argv[2] === 'png' && process.argv[3]) fs.writeFileSync(process.argv[3], tinyPng());
