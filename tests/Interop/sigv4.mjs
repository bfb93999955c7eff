// Signs one request with @smithy/signature-v4 (the AWS SDK for JavaScript v3 signer), the independent
// implementation SigV4InteropTests checks CcRelay.Core's SigV4 against.
//
// stdin:  {"method","url","headers":{name:value},"body":base64,"region","service",
//          "accessKeyId","secretAccessKey","sessionToken"?,"date":ISO-8601}
// stdout: {"authorization","x-amz-date","x-amz-content-sha256","x-amz-security-token"?}
//
// The URL's path is passed on exactly as written (already percent-encoded, as on the wire); the query is
// split into decoded name/value pairs, which smithy encodes again; `host` comes from the URL (port kept
// when not the scheme's default).
import { SignatureV4 } from "@smithy/signature-v4";
import { Sha256 } from "@aws-crypto/sha256-js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const parsed = new URL(input.url);
const afterScheme = input.url.slice(input.url.indexOf("://") + 3);
const pathAndQuery = afterScheme.slice(afterScheme.indexOf("/"));
const queryAt = pathAndQuery.indexOf("?");
const path = queryAt < 0 ? pathAndQuery : pathAndQuery.slice(0, queryAt);
const query = {};
if (queryAt >= 0) {
  for (const pair of pathAndQuery.slice(queryAt + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    const value = decodeURIComponent(eq < 0 ? "" : pair.slice(eq + 1));
    if (name in query) query[name] = [].concat(query[name], value);
    else query[name] = value;
  }
}

const request = {
  method: input.method,
  protocol: parsed.protocol,
  hostname: parsed.hostname,
  port: parsed.port === "" ? undefined : Number(parsed.port),
  path,
  query,
  headers: { ...input.headers, host: parsed.host },
  body: Buffer.from(input.body ?? "", "base64"),
};

const credentials = { accessKeyId: input.accessKeyId, secretAccessKey: input.secretAccessKey };
if (input.sessionToken) credentials.sessionToken = input.sessionToken;

const signer = new SignatureV4({
  service: input.service,
  region: input.region,
  credentials,
  sha256: Sha256,
  uriEscapePath: true,
  applyChecksum: true,
});
const signed = await signer.sign(request, { signingDate: new Date(input.date) });

const out = {};
for (const name of ["authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]) {
  if (signed.headers[name] !== undefined) out[name] = signed.headers[name];
}
process.stdout.write(JSON.stringify(out));
