#!/usr/bin/env node
// iron-cage benchmark: the LlmRouter against the fake upstream directly and against nginx as a plain
// reverse proxy, in one run on one machine, reported as ratios. See bench/README.md.
//   node bench/run.mjs [--quick] [--no-build] [--no-pii] [--pii-only] [--no-memory] [--seconds N] [--rounds N] [--requests N]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { body, endpoint, authHeaders } from './lib/bodies.mjs';
import { cpuMicros, runOrThrow, runWrk, startFloor, startHost, startNginx, startUpstream, which, withChildren } from './lib/procs.mjs';
import { timeStreamsInterleaved } from './lib/stream-client.mjs';
import { checks, markdown } from './lib/report.mjs';
import { runPiiBench } from './lib/pii.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const SRC = path.resolve(process.env.BENCH_SOURCE_DIR ?? ROOT); // benchmark a snapshot: see README
const BUILD = path.join(BENCH, '.build');
const TARGET_DIR = process.env.CARGO_TARGET_DIR ?? path.join(ROOT, 'target');
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const value = (name) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : undefined);
const QUICK = flag('--quick');
const P = {
  seconds: value('--seconds') ?? (QUICK ? 4 : 12),
  // Each load test is split into this many rounds over all targets (see `inRounds`).
  rounds: value('--rounds') ?? (QUICK ? 2 : 3),
  streamReps: QUICK ? 5 : 15,
  memRequests: value('--requests') ?? (QUICK ? 100_000 : 1_000_000),
  chunks: 1000,
  pacedDelayUs: 1000,
};
const log = (...a) => console.error('[bench]', ...a);

function preflight() {
  const missing = ['wrk', 'nginx', 'cargo'].filter((c) => !which(c));
  if (missing.length) {
    console.error(`missing: ${missing.join(', ')}. On Debian/Ubuntu:\n  sudo apt-get update && sudo apt-get install -y wrk nginx-light\n` +
      '(cargo: https://rustup.rs). Then run `npm run bench` again.');
    process.exit(2);
  }
}

function build() {
  const env = { ...process.env, CARGO_TARGET_DIR: TARGET_DIR };
  log(`building the fake upstream (release) into ${TARGET_DIR}`);
  runOrThrow('cargo', ['build', '--release', '--quiet', '--manifest-path', path.join(BENCH, 'upstream/Cargo.toml')], { env });
  if (flag('--no-build') && existsSync(path.join(BUILD, 'dist/index.js'))) return;
  mkdirSync(BUILD, { recursive: true });
  log(`building the release addon from ${SRC}`);
  const napi = path.join(ROOT, 'node_modules/.bin/napi');
  runOrThrow(napi, ['build', '--platform', '--release', '--js', 'binding.cjs', '--dts', 'binding.d.cts', '-o', BUILD], { cwd: SRC, env });
  log('bundling the TypeScript facade');
  const tsup = path.join(ROOT, 'node_modules/.bin/tsup');
  runOrThrow(tsup, [path.join(SRC, 'src-ts/index.ts'), '--no-config', '--format', 'esm', '--target', 'node20', '--platform', 'node',
    '--external', '../binding.cjs', '--out-dir', path.join(BUILD, 'dist'), '--silent'], { cwd: SRC });
}

function nativePath() {
  if (process.env.BENCH_NATIVE) return path.resolve(process.env.BENCH_NATIVE);
  const node = readdirSync(BUILD).find((n) => n.endsWith('.node'));
  if (!node) throw new Error(`no .node addon in ${BUILD}; run without --no-build`);
  return path.join(BUILD, node);
}

function machine() {
  const cpus = os.cpus();
  const version = (cmd, args) => {
    // nginx -v writes to stderr, wrk -v exits with 1: take the first line of either stream.
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0];
  };
  return {
    cpu: cpus[0]?.model, cores: cpus.length, memGb: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version,
    nginx: version(which('nginx'), ['-v']), wrk: version('wrk', ['-v']),
    commit: existsSync(path.join(SRC, '.commit')) ? readFileSync(path.join(SRC, '.commit'), 'utf8').trim() : version('git', ['-C', SRC, 'rev-parse', '--short', 'HEAD']),
    source: SRC,
    loadAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

// ---------------------------------------------------------------- scenarios

async function wrkRun(base, provider, token, connections, seconds, files, pids = {}) {
  const opts = {
    url: base + endpoint(provider), bodyFile: files[provider], headers: authHeaders(provider, token),
    threads: connections > 1 ? 2 : 1, connections, luaScript: path.join(BENCH, 'lib/post.lua'),
  };
  await runWrk({ ...opts, seconds: 1 }); // warm-up: connections, pools, caches
  // CPU used per request by the proxy and by the upstream: a figure that other load on the machine
  // disturbs far less than throughput.
  const before = { proxy: cpuMicros(pids.proxy?.() ?? []), upstream: cpuMicros(pids.upstream ?? []) };
  const r = await runWrk({ ...opts, seconds });
  r.proxyCpuUsPerReq = (cpuMicros(pids.proxy?.() ?? []) - before.proxy) / r.requests;
  r.upstreamCpuUsPerReq = (cpuMicros(pids.upstream ?? []) - before.upstream) / r.requests;
  return r;
}

/** One streamed request per target and round, the targets interleaved (see `timeStreamsInterleaved`). */
function streams(targets, provider, delayUs, lead = false) {
  return timeStreamsInterleaved(targets.map(({ base, token }) => ({
    url: `${base}${endpoint(provider)}?chunks=${P.chunks}&delay_us=${delayUs}${lead ? '&lead=1' : ''}`,
    body: body(provider, true),
    headers: Object.fromEntries(authHeaders(provider, token).map((h) => h.split(/:\s*/))),
  })), P.streamReps);
}

/**
 * `run(name)` for every target in `P.rounds` rounds, a different target first each round; per target
 * the rounds combined: counts and durations summed (so `rps` is over the whole time), every other
 * figure (latency percentiles, CPU per request) the median of the rounds, which a passing slow phase
 * of a shared machine moves less than one long run.
 */
async function inRounds(names, run) {
  const per = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < P.rounds; i++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(i + k) % names.length];
      per[n].push(await run(n));
    }
  }
  return Object.fromEntries(names.map((n) => [n, combineRounds(per[n])]));
}

const SUMMED = ['requests', 'duration_us', 'bytes', 'err_connect', 'err_read', 'err_write', 'err_status', 'err_timeout', 'errors'];

function combineRounds(rounds) {
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const out = { rounds: rounds.length };
  for (const key of Object.keys(rounds[0])) {
    const values = rounds.map((r) => r[key]);
    if (typeof values[0] !== 'number') out[key] = values[0];
    else if (SUMMED.includes(key)) out[key] = values.reduce((a, b) => a + b, 0);
    else out[key] = median(values);
  }
  out.rps = out.requests / (out.duration_us / 1e6);
  out.roundsRps = rounds.map((r) => Math.round(r.rps));
  return out;
}

/**
 * Every scenario against every target, scenario by scenario: each scenario runs on all targets
 * back to back (streams interleaved request by request), so a baseline is measured next to what
 * is compared with it, not minutes apart. `targets[name]` = { openai, anthropic, pids, during }.
 */
async function measureAll(targets, files) {
  // Targets marked `loadOnly` (the stack's floor) take part in the 1- and 64-connection rounds only.
  const all = Object.keys(targets);
  const names = all.filter((n) => !targets[n].loadOnly);
  const out = Object.fromEntries(all.map((n) => [n, {}]));
  const seconds = Math.max(1, Math.round(P.seconds / P.rounds));
  log(`1 connection: ${P.rounds} rounds of ${seconds} s per target`);
  const c1 = await inRounds(all, (n) => wrkRun(targets[n].openai.base, 'openai', targets[n].openai.token, 1, seconds, files, targets[n].pids));
  log(`64 connections: ${P.rounds} rounds of ${seconds} s per target`);
  const c64 = await inRounds(all, async (n) => {
    const t = targets[n];
    await t.during?.before64?.();
    const r = await wrkRun(t.openai.base, 'openai', t.openai.token, 64, seconds, files, t.pids);
    await t.during?.after64?.();
    return r;
  });
  for (const n of all) Object.assign(out[n], { c1: c1[n], c64: c64[n] });
  log(`streams (${P.chunks} chunks, burst and paced ${P.pacedDelayUs} us), targets interleaved`);
  const openai = names.map((n) => targets[n].openai);
  const anthropic = names.map((n) => targets[n].anthropic);
  const burst = await streams(openai, 'openai', 0);
  // The same burst with the space before each word (" token"), as real models stream: the PII
  // filter then holds each word until the next arrives and rewrites most events.
  const burstLead = await streams(openai, 'openai', 0, true);
  const paced = await streams(openai, 'openai', P.pacedDelayUs);
  log(`Anthropic shape, 64 connections: ${P.rounds} rounds of ${seconds} s per target`);
  const c64Anthropic = await inRounds(names, (n) => {
    const t = targets[n];
    return wrkRun(t.anthropic.base, 'anthropic', t.anthropic.token, 64, seconds, files, { ...t.pids, proxy: t.pids.anthropicProxy });
  });
  for (const n of names) out[n].c64Anthropic = c64Anthropic[n];
  const burstAnthropic = await streams(anthropic, 'anthropic', 0);
  names.forEach((n, i) => {
    out[n].streamBurst = burst[i];
    out[n].streamBurstLead = burstLead[i];
    out[n].streamPaced = paced[i];
    out[n].streamBurstAnthropic = burstAnthropic[i];
  });
  return out;
}

const SAFETY_ON = { request: { default: 'redact', secret: 'block' }, response: { default: 'log', secret: 'redact' } };
// Secrets have their own defaults (block in prompts, redact in answers): 'off' needs them named.
const SAFETY_OFF = { request: { default: 'off', secret: 'off' }, response: { default: 'off', secret: 'off' } };

function routerOptions(provider, upstreamUrl, on) {
  const providerKey = provider === 'anthropic' ? 'sk-ant-bench-real-key' : 'sk-test-real-key';
  const reliability = { breaker: { enabled: on } };
  return { options: { providerKey, providerBaseUrl: upstreamUrl, provider, reliability, ...(on ? { budgetUsd: 1e6 } : {}) }, listen: on, safety: on ? SAFETY_ON : SAFETY_OFF };
}

async function withHosts(env, upstreamUrl, on, fn) {
  const hostScript = path.join(BENCH, 'lib/router-host.mjs');
  const hosts = [];
  try {
    const started = {};
    for (const provider of ['openai', 'anthropic']) {
      const h = await startHost(hostScript, env);
      hosts.push(h);
      const s = await h.call('start', routerOptions(provider, upstreamUrl, on));
      started[provider] = { host: h, base: s.anthropicBaseUrl, token: s.apiKey, safetyAccepted: s.safetyAccepted };
    }
    return await fn(started);
  } finally {
    for (const h of hosts) await h.kill();
  }
}

async function memoryRun(env, upstreamUrl, files) {
  const h = await startHost(path.join(BENCH, 'lib/router-host.mjs'), env);
  try {
    const boot = h.rssAtBoot;
    const s = await h.call('start', routerOptions('openai', upstreamUrl, true));
    await h.call('sampleStart', { everyMs: 100 });
    const total = P.memRequests;
    let last = 0;
    log(`memory: ${total} requests over 256 connections`);
    const w = await runWrk({
      url: s.anthropicBaseUrl + endpoint('openai'), bodyFile: files.openai, headers: authHeaders('openai', s.apiKey),
      threads: 2, connections: 256, seconds: 3600, luaScript: path.join(BENCH, 'lib/post.lua'),
      stopWhen: async () => {
        const { stats } = await h.call('stats');
        if (stats.requests - last >= total / 10) {
          last = stats.requests;
          log(`memory: ${stats.requests} requests`);
        }
        return stats.requests >= total;
      },
    });
    const { samples } = await h.call('sampleStop');
    await new Promise((r) => setTimeout(r, 3000));
    const idle = (await h.call('rss')).rss;
    const { tally, stats } = await h.call('stats');
    const MB = 2 ** 20;
    const at = (n) => samples.find((x) => x.requests >= n) ?? samples[samples.length - 1];
    const checkpoint = at(total / 10);
    const end = samples[samples.length - 1];
    const peak = Math.max(...samples.map((x) => x.rss));
    const series = [];
    for (let k = 1; k <= 10; k++) series.push({ requests: at((k * total) / 10).requests, rssMb: +(at((k * total) / 10).rss / MB).toFixed(1) });
    return {
      requests: end.requests, checkpointRequests: checkpoint.requests, rps: w.rps, p99Ms: w.lat_p99_us / 1000, errors: w.errors,
      bootMb: boot / MB, afterCreateMb: s.rss / MB, peakMb: peak / MB, addedPeakMb: (peak - boot) / MB,
      checkpointMb: checkpoint.rss / MB, endMb: end.rss / MB, idleMb: idle / MB, drift: (end.rss - checkpoint.rss) / checkpoint.rss,
      series, events: tally.events, eventsDropped: stats.eventsDropped,
    };
  } finally {
    await h.kill();
  }
}

// ---------------------------------------------------------------- main

async function main() {
  preflight();
  const result = { date: new Date().toISOString(), quick: QUICK, params: P, targets: {} };
  if (!flag('--pii-only')) {
    build();
    result.machine = machine();
    if (result.machine.loadAtStart[0] > 1) log(`warning: load average ${result.machine.loadAtStart[0]} before the run; other work on this machine skews the figures`);
    const env = { BENCH_DIST_INDEX: path.join(BUILD, 'dist/index.js'), NAPI_RS_NATIVE_LIBRARY_PATH: nativePath() };
    log(`addon: ${env.NAPI_RS_NATIVE_LIBRARY_PATH}`);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'iron-bench-'));
    const files = { openai: path.join(tmp, 'openai.json'), anthropic: path.join(tmp, 'anthropic.json') };
    writeFileSync(files.openai, body('openai', false));
    writeFileSync(files.anthropic, body('anthropic', false));
    const upstream = await startUpstream(path.join(TARGET_DIR, 'release/bench_upstream'), 1);
    const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
    const nginx = await startNginx(which('nginx'), upstream.port);
    result.nginxConf = nginx.conf;
    const floor = await startFloor(path.join(TARGET_DIR, 'release/bench_floor'), upstream.port);
    try {
      const direct = { base: upstreamUrl, token: 'unused' };
      const up = { upstream: [upstream.pid] };
      const viaNginx = { base: `http://127.0.0.1:${nginx.port}`, token: 'unused' };
      const nginxPids = () => withChildren(nginx.pid);
      // Both routers (policies on and off) run side by side, idle while another target is measured.
      await withHosts(env, upstreamUrl, true, (on) => withHosts(env, upstreamUrl, false, async (off) => {
        result.safetyOptionAccepted = on.openai.safetyAccepted;
        const router = (r) => ({ openai: r.openai, anthropic: r.anthropic, pids: { ...up, proxy: () => [r.openai.host.pid], anthropicProxy: () => [r.anthropic.host.pid] } });
        const targets = {
          direct: { openai: direct, anthropic: direct, pids: up },
          nginx: { openai: viaNginx, anthropic: viaNginx, pids: { ...up, proxy: nginxPids, anthropicProxy: nginxPids } },
          routerOn: {
            ...router(on),
            // The event loop's delay in each 64-connection round; the worst round is reported.
            during: {
              before64: () => on.openai.host.call('eldStart'),
              after64: async () => {
                const e = await on.openai.host.call('eldStop');
                if (!(result.eventLoop?.p99Ms >= e.p99Ms)) result.eventLoop = e;
              },
            },
          },
          routerOff: router(off),
          // The router's stack with nothing on it: hyper on tokio, forwarding (see bench_floor).
          floor: { loadOnly: true, openai: { base: `http://127.0.0.1:${floor.port}`, token: 'unused' }, pids: { ...up, proxy: () => [floor.pid] } },
        };
        result.targets = await measureAll(targets, files);
        for (const [name, r] of [['routerOn', on], ['routerOff', off]]) {
          const { tally, stats } = await r.openai.host.call('stats');
          result.targets[name].router = { events: tally.events, eventsByType: tally.byType, stats: { requests: stats.requests, completed: stats.completed, failed: stats.failed, blocked: stats.blocked, eventsDropped: stats.eventsDropped } };
        }
      }));
      if (!flag('--no-memory')) result.memory = await memoryRun(env, upstreamUrl, files);
    } finally {
      await nginx.stop();
      floor.stop();
      upstream.stop();
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  if (!flag('--no-pii')) result.pii = runPiiBench(SRC, TARGET_DIR);
  if (result.machine) result.machine.loadAtEnd = os.loadavg().map((x) => +x.toFixed(2));
  result.checks = checks(result);
  const md = markdown(result);
  mkdirSync(path.join(BENCH, 'results'), { recursive: true });
  const out = path.join(BENCH, 'results', QUICK ? 'latest-quick.json' : 'latest.json');
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  writeFileSync(out.replace(/\.json$/, '.md'), md + '\n');
  console.log(md);
  log(`wrote ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
