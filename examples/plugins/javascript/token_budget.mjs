#!/usr/bin/env node
// A cc-relay plugin (protocol v1, docs/plugins.md): keeps max_tokens within a budget per model family,
// read from the plugin's own environment (plugins.<name>.env in the relay's config):
//   BUDGET_DEFAULT=8192  BUDGET_HAIKU=2048
// One JSON line in per request, one JSON line out; stdout carries protocol lines only, logs go to stderr.
import { createInterface } from "node:readline";

const budgetFor = (model) => {
  const haiku = Number(process.env.BUDGET_HAIKU ?? 2048);
  const fallback = Number(process.env.BUDGET_DEFAULT ?? 8192);
  return /haiku/.test(model) ? haiku : fallback;
};

const handle = (request) => {
  const body = request.body;
  const budget = budgetFor(String(body.model ?? request.model ?? ""));
  if (typeof body.max_tokens === "number" && body.max_tokens <= budget) {
    return { v: 1, id: request.id, unchanged: true };
  }
  body.max_tokens = budget;
  return { v: 1, id: request.id, body };
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  let answer;
  try {
    const request = JSON.parse(line);
    answer = request.v === 1
      ? handle(request)
      : { v: 1, id: request.id ?? null, error: "unsupported protocol version" };
  } catch (e) {
    process.stderr.write(`token_budget: ${e}\n`);
    answer = { v: 1, id: null, error: String(e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
