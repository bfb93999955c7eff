// Calls the relay's management API with @grpc/grpc-js and @grpc/proto-loader (a stock gRPC stack that is not
// .NET), loading proto/ccrelay/v1/management.proto as written; ManagementInteropTests checks what it prints.
//
// stdin:  {"address":"127.0.0.1:port","token","proto":path,"relay":"http://127.0.0.1:port","newKey"}
// stdout: {"unauthenticated":{code,details},"status","providers","keys","config","disabled","enabled",
//          "request","stats":[...],"models","added","removed","reload","usage","clientAdded","clientRotated",
//          "clientRevoked","clients","plugins"} (messages as proto-loader decodes them: longs as strings; a call the
//          relay refuses as {code,details})
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { createHash } from "node:crypto";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const definition = protoLoader.loadSync(input.proto, { keepCase: false, longs: String, defaults: true });
const ccrelay = grpc.loadPackageDefinition(definition).ccrelay.v1;
const client = new ccrelay.RelayManagement(input.address, grpc.credentials.createInsecure());

const auth = new grpc.Metadata();
auth.add("authorization", `Bearer ${input.token}`);

const unary = (method, request, metadata = auth) =>
  new Promise((resolve, reject) =>
    client[method](request, metadata, (error, response) => (error ? reject(error) : resolve(response))));

const output = {};
try {
  await unary("getStatus", {}, new grpc.Metadata());
  output.unauthenticated = { code: 0 };
} catch (error) {
  output.unauthenticated = { code: error.code, details: error.details };
}

output.status = await unary("getStatus", {});
output.providers = await unary("listProviders", {});
output.keys = await unary("listKeys", { provider: "" });
output.config = await unary("getConfig", {});
output.disabled = await unary("setProviderEnabled", { name: "a", enabled: false });
output.enabled = await unary("setProviderEnabled", { name: "a", enabled: true });

// WatchRequests: subscribed once the headers arrive; then one request through the relay, and its message
output.request = await new Promise((resolve, reject) => {
  const call = client.watchRequests({}, auth);
  call.on("metadata", async () => {
    const answer = await fetch(`${input.relay}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "sk-ant-client" },
      body: JSON.stringify({ model: "claude-sonnet-4-6", max_tokens: 16, messages: [{ role: "user", content: "hi" }] }),
    });
    await answer.text();
  });
  call.on("data", (message) => {
    resolve(message);
    call.cancel();
  });
  call.on("error", (error) => (error.code === grpc.status.CANCELLED ? undefined : reject(error)));
});

// WatchStats: two messages 100 ms apart, then cancel
output.stats = await new Promise((resolve, reject) => {
  const messages = [];
  const call = client.watchStats({ intervalMs: 100 }, auth);
  call.on("data", (message) => {
    messages.push(message);
    if (messages.length === 2) {
      call.cancel();
      resolve(messages);
    }
  });
  call.on("error", (error) => (error.code === grpc.status.CANCELLED ? undefined : reject(error)));
});

// ListModels, and a key added to a's live pool (answered by its key id only) and removed again
output.models = await unary("listModels", {});
output.added = await unary("addKey", { provider: "a", key: input.newKey, rpmLimit: 5 });
output.removed = await unary("removeKey", { provider: "a", keyId: output.added.keyId });

// The rest of the service: a reload (the test relay has no config file: a refusal with its status code), usage
// from the ledger, a client key added (only its SHA-256 is sent), rotated and revoked, the clients, the plugins
const refused = (error) => ({ code: error.code, details: error.details });
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
output.reload = await unary("reloadConfig", {}).catch(refused);
output.usage = await unary("getUsage", { by: "client", since: "7d" });
output.clientAdded = await unary("addClient", { name: "interop", keySha256: sha256(input.clientKey), actor: "grpc-js" });
output.clientRotated = await unary("rotateClient", { name: "interop", keySha256: sha256(`${input.clientKey}-next`), graceMs: 60000, actor: "grpc-js" });
output.clientRevoked = await unary("revokeClient", { name: "interop", actor: "grpc-js" });
output.clients = await unary("listClients", {});
output.plugins = await unary("listPlugins", {});

client.close();
process.stdout.write(JSON.stringify(output));
