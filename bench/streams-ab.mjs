#!/usr/bin/env node
// The streaming scenarios alone, for an A/B of two builds in one sitting: burst and paced 1,000-chunk
// SSE answers through the router (policies on) of build A and build B, and directly, interleaved.
//   BENCH_NATIVE=a.node STREAMS_NATIVE_B=b.node node bench/streams-ab.mjs [reps]
// Needs bench/run.mjs to have built the upstream and the facade bundle once (bench/.build/dist).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { body, endpoint, authHeaders } from './lib/bodies.mjs';
import { startHost, startUpstream } from './lib/procs.mjs';
import { timeStreamsInterleaved } from './lib/stream-client.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(BENCH, '..', 'target');
const reps = Number(process.argv[2] ?? 40);
const upstream = await startUpstream(path.join(TARGET_DIR, 'release/bench_upstream'), 1);

async function router(addon) {
  const host = await startHost(path.join(BENCH, 'lib/router-host.mjs'), { BENCH_DIST_INDEX: path.join(BENCH, '.build/dist/index.js'), NAPI_RS_NATIVE_LIBRARY_PATH: path.resolve(addon) });
  const s = await host.call('start', {
    options: { providerKey: 'sk-test-real-key', providerBaseUrl: `http://127.0.0.1:${upstream.port}`, provider: 'openai', budgetUsd: 1e6, reliability: { breaker: { enabled: true } } },
    listen: true,
    safety: { request: { default: 'redact', secret: 'block' }, response: { default: 'log', secret: 'redact' } },
  });
  return { host, base: s.anthropicBaseUrl, token: s.apiKey };
}
const targets = { direct: { base: `http://127.0.0.1:${upstream.port}`, token: 'unused' }, A: await router(process.env.BENCH_NATIVE) };
if (process.env.STREAMS_NATIVE_B) targets.B = await router(process.env.STREAMS_NATIVE_B);
const names = Object.keys(targets);
for (const [label, delay] of [['burst', 0], ['paced', 1000]]) {
  const n = label === 'paced' ? Math.max(5, Math.round(reps / 4)) : reps;
  const res = await timeStreamsInterleaved(names.map((k) => ({
    url: `${targets[k].base}${endpoint('openai')}?chunks=1000&delay_us=${delay}`,
    body: body('openai', true),
    headers: Object.fromEntries(authHeaders('openai', targets[k].token).map((h) => h.split(/:\s*/))),
  })), n);
  names.forEach((k, i) => console.log(`${label} ${k}: first byte p50 ${res[i].ttfbP50Ms.toFixed(3)} p90 ${res[i].ttfbP90Ms.toFixed(3)} ms, total p50 ${res[i].totalP50Ms.toFixed(2)} ms, bad ${res[i].bad}`));
}
for (const k of names) await targets[k].host?.kill();
upstream.stop();
