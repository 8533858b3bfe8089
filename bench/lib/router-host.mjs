// The Node process that hosts one LlmRouter for the benchmark, driven by bench/run.mjs over IPC.
// It is a separate process so that its resident memory and event-loop delay are the router's alone.
// Messages in: {id, cmd, ...}; every message gets one reply {id, ok, ...} or {id, ok: false, error}.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const { LlmRouter } = await import(pathToFileURL(process.env.BENCH_DIST_INDEX).href);

let router;
let eld;
let sampler;
let samples = [];
const tally = { events: 0, byType: {}, costUsd: 0 };

function count(e) {
  // A listener that does a little real work per event, as an app that tallies spend would.
  tally.events += 1;
  tally.byType[e.type] = (tally.byType[e.type] ?? 0) + 1;
  if (typeof e.costUsd === 'number') tally.costUsd += e.costUsd;
}

function rss() {
  return process.memoryUsage.rss();
}

const handlers = {
  async rss() {
    return { rss: rss() };
  },
  async start({ options, listen, safety }) {
    let safetyAccepted = false;
    if (safety) {
      try {
        router = await LlmRouter.create({ ...options, safety });
        safetyAccepted = true;
      } catch (err) {
        if (!/safety/.test(String(err?.message))) throw err;
      }
    }
    router ??= await LlmRouter.create(options);
    if (listen) {
      for (const name of ['request', 'response', 'blocked', 'budget', 'pii', 'circuit', 'key', 'error']) router.on(name, count);
    }
    return {
      baseUrl: router.baseUrl,
      anthropicBaseUrl: router.anthropicBaseUrl,
      apiKey: router.apiKey,
      provider: router.provider,
      safetyAccepted,
      rss: rss(),
    };
  },
  async stop() {
    if (sampler) clearInterval(sampler);
    sampler = undefined;
    await router?.stop();
    router = undefined;
    return { rss: rss() };
  },
  async stats() {
    const s = router.stats();
    return { stats: s, tally: { ...tally, byType: { ...tally.byType } }, rss: rss() };
  },
  async eldStart() {
    eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    return {};
  },
  async eldStop() {
    eld.disable();
    const ms = (ns) => ns / 1e6;
    return { p50Ms: ms(eld.percentile(50)), p99Ms: ms(eld.percentile(99)), maxMs: ms(eld.max), meanMs: ms(eld.mean) };
  },
  async sampleStart({ everyMs }) {
    samples = [];
    sampler = setInterval(() => {
      samples.push({ t: Date.now(), rss: rss(), requests: router.stats().requests });
    }, everyMs);
    return {};
  },
  async sampleStop() {
    clearInterval(sampler);
    sampler = undefined;
    samples.push({ t: Date.now(), rss: rss(), requests: router.stats().requests });
    return { samples };
  },
  async gc() {
    globalThis.gc?.();
    return { rss: rss() };
  },
};

process.on('message', async (m) => {
  try {
    const out = await handlers[m.cmd](m);
    process.send({ id: m.id, ok: true, ...out });
  } catch (err) {
    process.send({ id: m.id, ok: false, error: String(err?.stack ?? err) });
  }
});
process.send({ id: 0, ok: true, ready: true, rss: rss() });
