#!/usr/bin/env node
// Profile the router under the 64-connection load (or PROFILE_CONNECTIONS) with perf (software cpu-clock event, DWARF stacks;
// PERF_CALLGRAPH=none records self time only, which needs no debug info beyond symbols).
//   BENCH_NATIVE=<addon built with debug info> node bench/profile.mjs [seconds]
// Build such an addon with:
//   CARGO_PROFILE_RELEASE_DEBUG=1 CARGO_PROFILE_RELEASE_STRIP=false npx napi build --platform --release \
//     --js binding.cjs --dts binding.d.cts -o /tmp/bench-prof
// Needs bench/run.mjs to have built the upstream and the facade bundle once (bench/.build/dist).
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { body, endpoint, authHeaders } from './lib/bodies.mjs';
import { runWrk, startHost, startUpstream } from './lib/procs.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(BENCH, '..', 'target');
const seconds = Number(process.argv[2] ?? 15);
// PROFILE_CONNECTIONS=1 profiles the one-connection latency case instead.
const connections = Number(process.env.PROFILE_CONNECTIONS ?? 64);
const out = process.env.PERF_OUT ?? path.join(os.tmpdir(), 'iron-bench-perf.data');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'iron-prof-'));
const bodyFile = path.join(tmp, 'openai.json');
writeFileSync(bodyFile, body('openai', false));
const upstream = await startUpstream(path.join(TARGET_DIR, 'release/bench_upstream'), 1);
const host = await startHost(path.join(BENCH, 'lib/router-host.mjs'), {
  BENCH_DIST_INDEX: path.join(BENCH, '.build/dist/index.js'),
  NAPI_RS_NATIVE_LIBRARY_PATH: path.resolve(process.env.BENCH_NATIVE),
});
// PROFILE_POLICIES=off profiles the bare proxy (no budget, PII, breaker or listener).
const off = process.env.PROFILE_POLICIES === 'off';
const s = await host.call('start', {
  options: { providerKey: 'sk-test-real-key', providerBaseUrl: `http://127.0.0.1:${upstream.port}`, provider: 'openai', ...(off ? {} : { budgetUsd: 1e6 }), reliability: { breaker: { enabled: !off } } },
  listen: !off,
  safety: off ? { request: { default: 'off', secret: 'off' }, response: { default: 'off', secret: 'off' } } : { request: { default: 'redact', secret: 'block' }, response: { default: 'log', secret: 'redact' } },
});
const load = { url: s.anthropicBaseUrl + endpoint('openai'), bodyFile, headers: authHeaders('openai', s.apiKey), threads: Math.min(2, connections), connections, luaScript: path.join(BENCH, 'lib/post.lua') };
await runWrk({ ...load, seconds: 2 });
const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', '499', ...(process.env.PERF_CALLGRAPH === 'none' ? [] : ['--call-graph', process.env.PERF_CALLGRAPH ?? 'dwarf,16384']), '-p', String(host.pid), '-o', out, '--', 'sleep', String(seconds - 2)], { stdio: 'inherit' });
const w = await runWrk({ ...load, seconds });
await new Promise((r) => (perf.exitCode !== null ? r() : perf.once('exit', r)));
console.log(`router ${w.rps.toFixed(0)} req/s, p99 ${(w.lat_p99_us / 1000).toFixed(2)} ms, errors ${w.errors}; profile in ${out}`);
console.log(`read it: perf report -i ${out} --no-children --sort dso,sym | head -80`);
await host.kill();
upstream.stop();
