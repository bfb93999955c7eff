#!/usr/bin/env node
// A cc-relay plugin (docs/plugins.md).
// Request side (kind "request", protocol v1): keeps max_tokens within a budget per model family, read from the
// plugin's own environment (plugins.<name>.env in the relay's config):
//   BUDGET_DEFAULT=8192  BUDGET_HAIKU=2048
// Answer side (protocol v2; place it under response: too, with sees: [request, response, event]): when an
// answer stopped at max_tokens (stop_reason "max_tokens"), it adds a `stop_details` note naming the budget, so
// whoever reads the answer knows a cap cut it short (clients ignore members they do not know):
//   kind "response": the whole JSON answer gets "stop_details":{"cap":N,"by":"cc-relay token_budget"}
//   kind "event":    the stream's message_delta event gets the same in its "delta"
// Every other call is answered "unchanged". One JSON line in per call, one JSON line out, with the call's own
// v and id; stdout carries protocol lines only, logs go to stderr.
import { createInterface } from "node:readline";

const budgetFor = (model) => {
  const haiku = Number(process.env.BUDGET_HAIKU ?? 2048);
  const fallback = Number(process.env.BUDGET_DEFAULT ?? 8192);
  return /haiku/.test(model) ? haiku : fallback;
};

const note = (model) => ({ cap: budgetFor(String(model ?? "")), by: "cc-relay token_budget" });

const handlers = {
  // v1: the request
  "1/request": (call) => {
    const body = call.body;
    const budget = budgetFor(String(body.model ?? call.model ?? ""));
    if (typeof body.max_tokens === "number" && body.max_tokens <= budget) return null;
    body.max_tokens = budget;
    return { body };
  },
  // v2: a whole JSON answer
  "2/response": (call) => {
    const body = call.body;
    if (body.stop_reason !== "max_tokens") return null;
    body.stop_details = note(call.model);
    return { body };
  },
  // v2: one SSE event of a streamed answer (its type and block index must stay as they are)
  "2/event": (call) => {
    const data = call.data;
    if (call.event !== "message_delta" || data.delta?.stop_reason !== "max_tokens") return null;
    data.delta.stop_details = note(call.model);
    return { data };
  },
};

const answer = (call) => {
  const handler = handlers[`${call.v}/${call.kind}`];
  if (!handler) return { v: call.v ?? null, id: call.id ?? null, error: "unsupported protocol version or kind" };
  const change = handler(call);
  return change ? { v: call.v, id: call.id, ...change } : { v: call.v, id: call.id, unchanged: true };
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  let reply;
  try {
    reply = answer(JSON.parse(line));
  } catch (e) {
    process.stderr.write(`token_budget: ${e}\n`);
    reply = { v: 1, id: null, error: String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
