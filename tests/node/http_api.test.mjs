// The daemon's HTTP API through the official npm clients `ollama` and `openai`, as tools that
// speak those APIs meet it. Run by tests/test_http.sh, which starts the daemon and sets
// CORTEX_HTTP_URL and CORTEX_HTTP_MODEL. The model has random weights: texts are noise, but
// structured output must still parse and match its schema (the grammar guarantees it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const base = process.env.CORTEX_HTTP_URL;
const model = process.env.CORTEX_HTTP_MODEL;
assert.ok(base && model, 'CORTEX_HTTP_URL and CORTEX_HTTP_MODEL must be set');
const ollama = new Ollama({ host: base });
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed', maxRetries: 0 });

// Bounded on purpose (maxLength, integer, enum): random weights must still finish the object.
const schema = {
  type: 'object',
  properties: {
    package: { type: 'string', enum: ['nginx', 'apache2', 'lighttpd'] },
    reason: { type: 'string', maxLength: 12 },
    count: { type: 'integer' },
    ok: { type: 'boolean' },
  },
  required: ['package', 'reason', 'count', 'ok'],
  additionalProperties: false,
};

function assertMatchesSchema(obj) {
  assert.equal(typeof obj, 'object');
  assert.deepEqual(Object.keys(obj).sort(), ['count', 'ok', 'package', 'reason']);
  assert.ok(['nginx', 'apache2', 'lighttpd'].includes(obj.package), obj.package);
  assert.equal(typeof obj.reason, 'string');
  assert.ok([...obj.reason].length <= 12); // characters, as JSON Schema counts them
  assert.ok(Number.isInteger(obj.count));
  assert.equal(typeof obj.ok, 'boolean');
}

async function activeSlots() {
  const ps = await ollama.ps();
  return ps.models[0].active;
}

test('ollama: list, ps, show and version name the served model', async () => {
  const list = await ollama.list();
  assert.ok(list.models.some((m) => m.name === `${model}:latest`), JSON.stringify(list));
  const ps = await ollama.ps();
  assert.equal(ps.models.length, 1);
  assert.equal(ps.models[0].name, `${model}:latest`);
  assert.equal(ps.models[0].details.format, 'gguf');
  const show = await ollama.show({ model });
  assert.equal(show.details.family, 'qwen2');
  assert.ok(show.model_info['general.architecture']);
  const version = await ollama.version();
  assert.match(version.version, /^\d+\.\d+\.\d+/);
});

test('ollama: generate without streaming returns Ollama statistics', async () => {
  const r = await ollama.generate({ model, prompt: 'Install nginx', stream: false, options: { num_predict: 8, temperature: 0, seed: 7 } });
  assert.equal(r.done, true);
  assert.equal(r.model, `${model}:latest`);
  assert.equal(typeof r.response, 'string');
  assert.ok(['stop', 'length'].includes(r.done_reason));
  assert.ok(r.eval_count >= 1 && r.eval_count <= 8, `eval_count ${r.eval_count}`);
  assert.ok(r.prompt_eval_count > 0);
  assert.ok(r.total_duration > 0 && r.prompt_eval_duration > 0);
  assert.ok(!Number.isNaN(Date.parse(r.created_at)));
});

test('ollama: streamed chat gives pieces then a final chunk; greedy equals non-streamed', async () => {
  const messages = [{ role: 'user', content: 'How do I install docker?' }];
  const options = { num_predict: 16, temperature: 0 };
  const stream = await ollama.chat({ model, messages, stream: true, options });
  let text = '';
  let pieces = 0;
  let last;
  for await (const part of stream) {
    if (!part.done) {
      pieces++;
      text += part.message.content;
    }
    last = part;
  }
  assert.ok(pieces >= 1);
  assert.equal(last.done, true);
  assert.equal(last.message.role, 'assistant');
  assert.ok(last.eval_count >= 1);
  const whole = await ollama.chat({ model, messages, stream: false, options });
  assert.equal(whole.message.content, text);
});

test('ollama: format with a JSON schema gives JSON that matches it', async () => {
  const r = await ollama.chat({
    model,
    messages: [{ role: 'user', content: 'Pick a web server as JSON' }],
    format: schema,
    stream: false,
    options: { temperature: 0.8, seed: 3, num_predict: 512 },
  });
  assertMatchesSchema(JSON.parse(r.message.content));
  const g = await ollama.generate({ model, prompt: 'JSON please', format: schema, stream: false, options: { seed: 11, num_predict: 512 } });
  assertMatchesSchema(JSON.parse(g.response));
});

test('ollama: unknown model is a 404 ResponseError', async () => {
  await assert.rejects(ollama.chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.equal(e.status_code, 404);
    assert.match(e.error, /not found/);
    return true;
  });
});

test('openai: models.list names the served model', async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [`${model}:latest`]);
});

test('openai: chat completion with usage', async () => {
  const r = await openai.chat.completions.create({
    model,
    messages: [{ role: 'system', content: 'You install packages.' }, { role: 'user', content: 'Install nginx' }],
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('openai: streamed chat (SSE) with include_usage', async () => {
  const stream = await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Install nginx' }],
    max_tokens: 12,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage && usage.completion_tokens >= 1);
  const whole = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Install nginx' }], max_tokens: 12, temperature: 0 });
  assert.equal(whole.choices[0].message.content, text);
});

test('openai: completions, plain and streamed', async () => {
  const r = await openai.completions.create({ model, prompt: 'apt install', max_tokens: 6, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(r.usage.completion_tokens >= 1);
  const stream = await openai.completions.create({ model, prompt: 'apt install', max_tokens: 6, temperature: 0, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('openai: response_format json_schema and json_object', async () => {
  const r = await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Pick a web server' }],
    response_format: { type: 'json_schema', json_schema: { name: 'pick', schema, strict: true } },
    max_tokens: 512,
    seed: 5,
  });
  assertMatchesSchema(JSON.parse(r.choices[0].message.content));
  const o = await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'JSON' }],
    response_format: { type: 'json_object' },
    max_tokens: 4,
    temperature: 0,
  });
  assert.match(o.choices[0].message.content, /^\s*\{/);
});

test('openai: errors are APIError subclasses with status and shape', async () => {
  await assert.rejects(openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  await assert.rejects(openai.chat.completions.create({ model, messages: [] }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'messages');
    return true;
  });
});

test('four clients at once are served together', async () => {
  const runs = [0, 1, 2, 3].map((i) =>
    openai.chat.completions.create({ model, messages: [{ role: 'user', content: `request ${i}` }], max_tokens: 16, temperature: 0 }),
  );
  const results = await Promise.all(runs);
  for (const r of results) assert.ok(r.usage.completion_tokens >= 1);
});

async function waitIdle() {
  for (let i = 0; i < 100; i++) {
    if ((await activeSlots()) === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

test('openai: aborting a stream (AbortController) frees the slot', async () => {
  const controller = new AbortController();
  // ignore_eos (llama.cpp's extension) keeps it generating until the slot is full: only the
  // abort can end it in time.
  const stream = await openai.chat.completions.create(
    { model, messages: [{ role: 'user', content: 'Write forever' }], max_tokens: 100000, stream: true, ignore_eos: true },
    { signal: controller.signal },
  );
  let chunks = 0;
  let busy = 0;
  try {
    for await (const _ of stream) {
      if (++chunks === 5) {
        busy = await activeSlots();
        controller.abort(); // the client ends the iteration quietly or with an AbortError
      }
    }
  } catch (e) {
    assert.match(e.name, /Abort/);
  }
  assert.ok(chunks >= 5);
  assert.equal(busy, 1);
  assert.ok(await waitIdle(), 'the slot is still busy after the client went away');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^cortex_slots_active 0$/m);
});

test('ollama: abort() on a streamed generate frees the slot', async () => {
  const stream = await ollama.generate({ model, prompt: 'Write forever', stream: true, options: { num_predict: -1, temperature: 1 } });
  let parts = 0;
  try {
    for await (const part of stream) {
      if (part.done) break; // a random model may end early; then there is nothing to abort
      if (++parts === 5) stream.abort();
    }
  } catch (e) {
    assert.equal(e.name, 'AbortError');
  }
  assert.ok(await waitIdle(), 'the slot is still busy after the client went away');
});
