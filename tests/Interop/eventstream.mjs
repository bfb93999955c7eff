// The AWS event-stream codec of the AWS SDK for JavaScript (@smithy/eventstream-codec), as an independent
// implementation the relay's EventStream is checked against (tests/Host.Tests/Interop/EventStreamInteropTests.cs).
//
//   node eventstream.mjs encode   stdin: JSON [{"headers":[{"name","type","value"}],"payload":"<base64>"}]
//                                 stdout: the concatenated encoded messages, base64
//   node eventstream.mjs decode   stdin: concatenated encoded messages, base64
//                                 stdout: JSON in the encode input's shape
//
// Header types are smithy's names: boolean, byte, short, integer (JSON numbers or booleans), long (decimal
// string), binary (base64), string, timestamp (epoch milliseconds), uuid (lower-case 8-4-4-4-12 string).
import { EventStreamCodec, Int64 } from "@smithy/eventstream-codec";
import { fromUtf8, toUtf8 } from "@smithy/util-utf8";

const codec = new EventStreamCodec(toUtf8, fromUtf8);

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (chunk) => chunks.push(chunk));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function int64Of(decimal) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigInt64(0, BigInt(decimal), false);
  return new Int64(bytes);
}

function decimalOf(int64) {
  const bytes = Uint8Array.from(int64.bytes);
  return new DataView(bytes.buffer).getBigInt64(0, false).toString();
}

function toSmithyValue({ type, value }) {
  switch (type) {
    case "long":
      return { type, value: int64Of(value) };
    case "binary":
      return { type, value: new Uint8Array(Buffer.from(value, "base64")) };
    case "timestamp":
      return { type, value: new Date(value) };
    default:
      return { type, value };
  }
}

function fromSmithyValue(name, { type, value }) {
  switch (type) {
    case "long":
      return { name, type, value: decimalOf(value) };
    case "binary":
      return { name, type, value: Buffer.from(value).toString("base64") };
    case "timestamp":
      return { name, type, value: value.getTime() };
    default:
      return { name, type, value };
  }
}

function encode(messages) {
  const frames = messages.map(({ headers, payload }) => {
    const smithyHeaders = {};
    for (const header of headers) smithyHeaders[header.name] = toSmithyValue(header);
    return codec.encode({ headers: smithyHeaders, body: new Uint8Array(Buffer.from(payload, "base64")) });
  });
  return Buffer.concat(frames.map((frame) => Buffer.from(frame))).toString("base64");
}

function decode(base64) {
  const all = new Uint8Array(Buffer.from(base64.trim(), "base64"));
  const messages = [];
  let offset = 0;
  while (offset < all.byteLength) {
    const total = new DataView(all.buffer, all.byteOffset + offset, 4).getUint32(0, false);
    const { headers, body } = codec.decode(all.subarray(offset, offset + total));
    messages.push({
      headers: Object.entries(headers).map(([name, value]) => fromSmithyValue(name, value)),
      payload: Buffer.from(body).toString("base64"),
    });
    offset += total;
  }
  return messages;
}

const mode = process.argv[2];
const input = await readStdin();
if (mode === "encode") {
  process.stdout.write(encode(JSON.parse(input)));
} else if (mode === "decode") {
  process.stdout.write(JSON.stringify(decode(input)));
} else {
  process.stderr.write("usage: node eventstream.mjs encode|decode\n");
  process.exit(2);
}
