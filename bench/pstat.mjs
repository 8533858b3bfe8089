#!/usr/bin/env node
// perf stat (software counters) of the router process under the 64-connection load, policies on or off.
//   BENCH_NATIVE=<addon> PROFILE_POLICIES=off node bench/pstat.mjs [seconds]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { body, endpoint, authHeaders } from './lib/bodies.mjs';
import { runWrk, startHost, startUpstream } from './lib/procs.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(BENCH, '..', 'target');
const seconds = Number(process.argv[2] ?? 8);
const connections = Number(process.env.PROFILE_CONNECTIONS ?? 64);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'iron-pstat-'));
const bodyFile = path.join(tmp, 'openai.json');
writeFileSync(bodyFile, body('openai', false));
const upstream = await startUpstream(path.join(TARGET_DIR, 'release/bench_upstream'), 1);
const host = await startHost(path.join(BENCH, 'lib/router-host.mjs'), {
  BENCH_DIST_INDEX: path.join(BENCH, '.build/dist/index.js'),
  NAPI_RS_NATIVE_LIBRARY_PATH: path.resolve(process.env.BENCH_NATIVE),
  ...(process.env.MIMALLOC_ENV ? Object.fromEntries(process.env.MIMALLOC_ENV.split(',').map((kv) => kv.split('='))) : {}),
});
const off = process.env.PROFILE_POLICIES === 'off';
const s = await host.call('start', {
  options: { providerKey: 'sk-test-real-key', providerBaseUrl: `http://127.0.0.1:${upstream.port}`, provider: 'openai', ...(off ? {} : { budgetUsd: 1e6 }), reliability: { breaker: { enabled: !off } } },
  listen: !off,
  safety: off ? { request: { default: 'off', secret: 'off' }, response: { default: 'off', secret: 'off' } } : { request: { default: 'redact', secret: 'block' }, response: { default: 'log', secret: 'redact' } },
});
const load = { url: s.anthropicBaseUrl + endpoint('openai'), bodyFile, headers: authHeaders('openai', s.apiKey), threads: Math.min(2, connections), connections, luaScript: path.join(BENCH, 'lib/post.lua') };
await runWrk({ ...load, seconds: 2 });
const perf = spawn('perf', ['stat', '-e', 'task-clock,page-faults,context-switches,cpu-migrations', '--per-thread', '-p', String(host.pid), '--', 'sleep', String(seconds - 2)], { stdio: 'inherit' });
const w = await runWrk({ ...load, seconds });
await new Promise((r) => (perf.exitCode !== null ? r() : perf.once('exit', r)));
console.log(`router ${w.rps.toFixed(0)} req/s, p99 ${(w.lat_p99_us / 1000).toFixed(2)} ms, errors ${w.errors}; requests in perf window ~${(w.rps * (seconds - 2)).toFixed(0)}`);
await host.kill();
upstream.stop();
