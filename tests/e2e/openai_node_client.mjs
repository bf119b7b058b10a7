// OpenAI's Node.js SDK (npm `openai`, pinned in .ci/tools.sh) against the gateway, as a Node
// application uses it: list the models, one chat, one stream, one tool round-trip. Prints what
// came back as one JSON object; test_e2e_openai_node.py asserts on it.
//
//   node openai_node_client.mjs SDK_DIR BASE_URL MODEL [POOL_HEADER POOL]
//
// SDK_DIR is the installed package's folder (what `.ci/tools.sh openai-node` prints): the SDK
// lives in a cache outside the clone, so it is imported by path, through its package's own
// entry point.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, baseURL, model, poolHeader, pool] = process.argv.slice(2);
const pkg = JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8"));
const entry = pkg.exports["."].default;
const { default: OpenAI } = await import(pathToFileURL(join(sdkDir, entry)).href);

const client = new OpenAI({
  baseURL,
  apiKey: "unused",
  maxRetries: 0,
  timeout: 120_000,
  defaultHeaders: pool ? { [poolHeader]: pool } : {},
});
const ANSWER_TOKENS = 8;
const asked = [{ role: "user", content: "What is the weather in Oslo?" }];
const untilLength = { max_tokens: ANSWER_TOKENS, ignore_eos: true };
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather in a city.",
    strict: true,
    parameters: {
      type: "object",
      properties: { city: { type: "string", enum: ["Oslo", "Lima"] } },
      required: ["city"],
      additionalProperties: false,
    },
  },
};

const models = [];
for await (const card of client.models.list()) models.push(card.id);

const chat = await client.chat.completions.create({ model, messages: asked, ...untilLength });

const stream = await client.chat.completions.create({
  model,
  messages: asked,
  stream: true,
  stream_options: { include_usage: true },
  ...untilLength,
});
const streamed = { text: "", finish: null, chunks: 0, usage: null };
for await (const chunk of stream) {
  streamed.chunks += 1;
  for (const choice of chunk.choices) {
    streamed.text += choice.delta.content ?? "";
    streamed.finish = choice.finish_reason ?? streamed.finish;
  }
  streamed.usage = chunk.usage ?? streamed.usage;
}

const first = await client.chat.completions.create({
  model,
  messages: asked,
  tools: [weather],
  tool_choice: { type: "function", function: { name: "get_weather" } },
  max_tokens: 200,
  seed: 7, // as every constrained request of the e2e tier (e2e_support.SEED)
});
const call = first.choices[0].message.tool_calls[0];
const result = JSON.stringify({ ...JSON.parse(call.function.arguments), degrees: 12 });
const final = await client.chat.completions.create({
  model,
  messages: [
    ...asked,
    first.choices[0].message,
    { role: "tool", tool_call_id: call.id, content: result },
  ],
  tools: [weather],
  tool_choice: "none",
  ...untilLength,
});

console.log(
  JSON.stringify({
    sdk: pkg.version,
    models,
    chat: {
      content: chat.choices[0].message.content,
      finish: chat.choices[0].finish_reason,
      usage: chat.usage,
    },
    stream: streamed,
    tool: {
      calls: first.choices[0].message.tool_calls,
      final: final.choices[0].message,
      final_finish: final.choices[0].finish_reason,
      final_prompt_tokens: final.usage.prompt_tokens,
    },
  }),
);
