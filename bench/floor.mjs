#!/usr/bin/env node
// How much of the router's cost per request is its stack: nginx, a bare hyper proxy on the router's
// runtime (`bench_floor`, no policy, no parsing, no accounting) and the router with policies off
// and on, measured in alternated rounds of wrk at 64 connections (or FLOOR_CONNECTIONS) in one run.
//   node bench/floor.mjs [rounds] [seconds]      (after bench/run.mjs has built bench/.build once)
// BENCH_NATIVE overrides the addon (default bench/.build's); FLOOR_TARGETS, FLOOR_NATIVE_B and FLOOR_ENV_B
// are described where they are read.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { authHeaders, body, endpoint } from './lib/bodies.mjs';
import { cpuMicros, runWrk, startFloor, startHost, startNginx, startUpstream, which, withChildren } from './lib/procs.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(BENCH, '..', 'target');
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 4);
const connections = Number(process.env.FLOOR_CONNECTIONS ?? 64);
const native = path.resolve(process.env.BENCH_NATIVE ?? path.join(BENCH, '.build/iron-cage.linux-x64-gnu.node'));

const tmp = mkdtempSync(path.join(os.tmpdir(), 'iron-floor-'));
const bodyFile = path.join(tmp, 'openai.json');
writeFileSync(bodyFile, body('openai', false));
const upstream = await startUpstream(path.join(TARGET_DIR, 'release/bench_upstream'), 1);
const nginx = await startNginx(which('nginx'), upstream.port);
const floor = await startFloor(path.join(TARGET_DIR, 'release/bench_floor'), upstream.port);
const floorPerCore = await startFloor(path.join(TARGET_DIR, 'release/bench_floor'), upstream.port, true);

async function router(on, extraEnv = {}, addon = native) {
  const host = await startHost(path.join(BENCH, 'lib/router-host.mjs'), { BENCH_DIST_INDEX: path.join(BENCH, '.build/dist/index.js'), NAPI_RS_NATIVE_LIBRARY_PATH: addon, ...extraEnv });
  const s = await host.call('start', {
    options: { providerKey: 'sk-test-real-key', providerBaseUrl: `http://127.0.0.1:${upstream.port}`, provider: 'openai', ...(on ? { budgetUsd: 1e6 } : {}), reliability: { breaker: { enabled: on } } },
    listen: on,
    safety: on ? { request: { default: 'redact', secret: 'block' }, response: { default: 'log', secret: 'redact' } } : { request: { default: 'off', secret: 'off' }, response: { default: 'off', secret: 'off' } },
  });
  return { host, base: s.anthropicBaseUrl, token: s.apiKey, pids: () => [host.pid] };
}
const on = await router(true);
const off = await router(false);
const targets = {
  direct: { base: `http://127.0.0.1:${upstream.port}`, token: 'unused', pids: () => [] },
  nginx: { base: `http://127.0.0.1:${nginx.port}`, token: 'unused', pids: () => withChildren(nginx.pid) },
  floor: { base: `http://127.0.0.1:${floor.port}`, token: 'unused', pids: () => [floor.pid] },
  // The same with one single-threaded runtime per core (nginx's design) instead of tokio's work-stealing pool.
  floorPerCore: { base: `http://127.0.0.1:${floorPerCore.port}`, token: 'unused', pids: () => [floorPerCore.pid] },
  routerOff: off,
  routerOn: on,
};
// FLOOR_NATIVE_B=<addon> adds routerOffB and routerOnB: the same with another build (A/B).
if (process.env.FLOOR_NATIVE_B) {
  targets.routerOffB = await router(false, {}, path.resolve(process.env.FLOOR_NATIVE_B));
  targets.routerOnB = await router(true, {}, path.resolve(process.env.FLOOR_NATIVE_B));
}
// FLOOR_ENV_B=NAME=value,NAME=value adds routerOffEnv and routerOnEnv: the router with that
// environment (allocator settings, IRON_CAGE_WORKER_THREADS, ...).
if (process.env.FLOOR_ENV_B) {
  const env = Object.fromEntries(process.env.FLOOR_ENV_B.split(',').map((kv) => kv.split('=')));
  targets.routerOffEnv = await router(false, env);
  targets.routerOnEnv = await router(true, env);
}
const totals = Object.fromEntries(Object.keys(targets).map((k) => [k, { requests: 0, secs: 0, cpu: 0, upCpu: 0, p50: [] }]));
// FLOOR_TARGETS=nginx,routerOff measures only those.
const names = process.env.FLOOR_TARGETS ? process.env.FLOOR_TARGETS.split(',') : Object.keys(targets);
for (const k of Object.keys(totals)) if (!names.includes(k)) delete totals[k];
for (let round = 0; round < rounds; round++) {
  for (let i = 0; i < names.length; i++) {
    const name = names[(i + round) % names.length];
    const t = targets[name];
    const load = { url: t.base + endpoint('openai'), bodyFile, headers: authHeaders('openai', t.token), threads: Math.min(2, connections), connections, luaScript: path.join(BENCH, 'lib/post.lua') };
    await runWrk({ ...load, seconds: 1 });
    const c0 = cpuMicros(t.pids());
    const u0 = cpuMicros([upstream.pid]);
    const traced = process.env.FLOOR_STRACE && round === 0 ? [...t.pids(), upstream.pid].map((pid) => spawn('strace', ['-c', '-f', '-q', '-o', path.join(tmp, `${name}-${pid === upstream.pid ? 'upstream' : 'proxy'}-${pid}.txt`), '-p', String(pid)], { stdio: 'ignore' })) : [];
    const w = await runWrk({ ...load, seconds });
    for (const s of traced) { s.kill('SIGINT'); await new Promise((r) => s.once('exit', r)); }
    if (traced.length) console.error(`${name}: ${w.requests} requests traced in ${tmp}`);
    const tot = totals[name];
    tot.requests += w.requests ?? w.rps * seconds;
    tot.secs += seconds;
    tot.cpu += cpuMicros(t.pids()) - c0;
    tot.upCpu += cpuMicros([upstream.pid]) - u0;
    tot.p50.push(w.lat_p50_us);
    if (w.errors) console.error(`${name}: ${w.errors} errors`);
  }
}
console.log(`load average ${os.loadavg()[0].toFixed(2)}; ${rounds} rounds of ${seconds} s at ${connections} connections`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p50 = Object.fromEntries(Object.entries(totals).map(([k, t]) => [k, median(t.p50)]));
const added = (k) => p50[k] - (p50.direct ?? NaN);
console.log('| target | req/s | ratio to nginx | proxy CPU µs/req | upstream CPU µs/req | p50 µs | added p50 µs | added p50 / nginx\'s |');
console.log('|---|---|---|---|---|---|---|---|');
const base = totals.nginx ? totals.nginx.requests / totals.nginx.secs : NaN;
for (const [name, t] of Object.entries(totals)) {
  const rps = t.requests / t.secs;
  const cpu = name === 'direct' ? '–' : (t.cpu / t.requests).toFixed(1);
  const add = name === 'direct' ? '–' : `${added(name).toFixed(0)} | ${(added(name) / added('nginx')).toFixed(2)}`;
  console.log(`| ${name} | ${rps.toFixed(0)} | ${(rps / base).toFixed(2)} | ${cpu} | ${(t.upCpu / t.requests).toFixed(1)} | ${p50[name].toFixed(0)} | ${name === 'direct' ? '– | –' : add} |`);
}
await on.host.kill();
await off.host.kill();
for (const k of ['routerOffEnv', 'routerOnEnv', 'routerOffB', 'routerOnB']) await targets[k]?.host.kill();
floor.stop();
floorPerCore.stop();
await nginx.stop();
upstream.stop();
