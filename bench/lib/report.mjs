// Turns raw measurements into the checks of issue 9 (ratios, same run) and a Markdown table.

const f = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));

/** The targets of issue 9 (and the scanner targets of issue 4) as {name, value, target, met}. */
export function checks(r) {
  const out = [];
  const add = (name, value, target, met, detail) => out.push({ name, value, target, met: value === null ? null : met, detail });
  const t = r.targets;
  if (t.routerOn && t.nginx && t.direct) {
    const rps = t.routerOn.c64.rps / t.nginx.c64.rps;
    add('64 conns: throughput router(on)/nginx', rps, '>= 0.8', rps >= 0.8,
      `${f(t.routerOn.c64.rps, 0)} vs ${f(t.nginx.c64.rps, 0)} req/s; p99 ${f(t.routerOn.c64.lat_p99_us / 1000)} vs ${f(t.nginx.c64.lat_p99_us / 1000)} ms`);
    const cpu = t.routerOn.c64.proxyCpuUsPerReq / t.nginx.c64.proxyCpuUsPerReq;
    add('64 conns: proxy CPU per request router(on)/nginx', cpu, '(report)', true,
      `${f(t.routerOn.c64.proxyCpuUsPerReq, 1)} vs ${f(t.nginx.c64.proxyCpuUsPerReq, 1)} us CPU/request (router off ${f(t.routerOff?.c64.proxyCpuUsPerReq, 1)})`);
    const addedRouter = t.routerOn.c1.lat_p50_us - t.direct.c1.lat_p50_us;
    const addedNginx = t.nginx.c1.lat_p50_us - t.direct.c1.lat_p50_us;
    const ratio = addedNginx > 0 ? addedRouter / addedNginx : null;
    add('1 conn: added p50 router(on)/nginx', ratio, '<= 1.5', ratio !== null && ratio <= 1.5,
      `added p50 ${addedRouter} vs ${addedNginx} us; added p99 ${t.routerOn.c1.lat_p99_us - t.direct.c1.lat_p99_us} vs ${t.nginx.c1.lat_p99_us - t.direct.c1.lat_p99_us} us`);
    if (t.floor?.c64 && t.floor?.c1) {
      // What the stack alone reaches: the ceiling any router built on it could approach.
      const floorRps = t.floor.c64.rps / t.nginx.c64.rps;
      add('64 conns: throughput floor (bare hyper proxy)/nginx', floorRps, '(report)', true,
        `${f(t.floor.c64.rps, 0)} req/s, ${f(t.floor.c64.proxyCpuUsPerReq, 1)} us CPU/request; router off ${f(t.routerOff?.c64.rps, 0)} req/s`);
      const addedFloor = t.floor.c1.lat_p50_us - t.direct.c1.lat_p50_us;
      add('1 conn: added p50 floor (bare hyper proxy)/nginx', addedNginx > 0 ? addedFloor / addedNginx : null, '(report)', true,
        `added p50 ${addedFloor} us; router off ${t.routerOff ? t.routerOff.c1.lat_p50_us - t.direct.c1.lat_p50_us : 'n/a'} us`);
    }
    for (const kind of ['streamPaced', 'streamBurst']) {
      const total = t.routerOn[kind].totalP50Ms / t.direct[kind].totalP50Ms;
      add(`${kind}: total time router(on)/direct`, total, '<= 1.1', total <= 1.1,
        `${f(t.routerOn[kind].totalP50Ms)} vs ${f(t.direct[kind].totalP50Ms)} ms (nginx ${f(t.nginx[kind].totalP50Ms)})`);
      const ttfb = t.routerOn[kind].ttfbP50Ms - t.direct[kind].ttfbP50Ms;
      add(`${kind}: added time to first byte (ms)`, ttfb, '<= 1', ttfb <= 1,
        `${f(t.routerOn[kind].ttfbP50Ms, 3)} vs ${f(t.direct[kind].ttfbP50Ms, 3)} ms (nginx ${f(t.nginx[kind].ttfbP50Ms, 3)})`);
    }
    if (t.routerOn.streamBurstLead && t.direct.streamBurstLead) {
      const lead = t.routerOn.streamBurstLead.totalP50Ms / t.direct.streamBurstLead.totalP50Ms;
      add('streamBurst, " token" deltas: total time router(on)/direct', lead, '(report)', true,
        `${f(t.routerOn.streamBurstLead.totalP50Ms)} vs ${f(t.direct.streamBurstLead.totalP50Ms)} ms (nginx ${f(t.nginx.streamBurstLead.totalP50Ms)}); each word held until the next arrives`);
    }
  }
  if (r.eventLoop) add('event loop delay p99 (ms), 64 conns + listener', r.eventLoop.p99Ms, '<= 20', r.eventLoop.p99Ms <= 20, `max ${f(r.eventLoop.maxMs)} ms`);
  if (r.memory) {
    const m = r.memory;
    add('memory added under 256 conns (MB)', m.addedPeakMb, '<= 60', m.addedPeakMb <= 60, `boot ${f(m.bootMb, 1)} MB, peak ${f(m.peakMb, 1)} MB`);
    add(`memory drift, ${m.requests} vs ${m.checkpointRequests} requests`, m.drift, '<= 0.10', Math.abs(m.drift) <= 0.1,
      `${f(m.endMb, 1)} MB vs ${f(m.checkpointMb, 1)} MB; after idle ${f(m.idleMb, 1)} MB`);
  }
  if (r.pii?.few) {
    add('PII scanner few hits (MB/s)', r.pii.few.scanner, '>= 200', r.pii.few.scanner >= 200, `naive ${f(r.pii.few.naive, 1)} MB/s`);
    add('PII scanner/naive, few hits', r.pii.few.speedup, '>= 3', r.pii.few.speedup >= 3, '');
    if (r.pii.many) add('PII scanner/naive, many hits', r.pii.many.speedup, '(report)', true, `${f(r.pii.many.scanner, 1)} vs ${f(r.pii.many.naive, 1)} MB/s`);
  }
  return out;
}

/** Markdown: the checks, then raw figures per target. */
export function markdown(r) {
  const lines = ['| figure | value | target | met | detail |', '|---|---|---|---|---|'];
  for (const c of r.checks) lines.push(`| ${c.name} | ${f(c.value)} | ${c.target} | ${c.met === null ? 'n/a' : c.met ? 'yes' : '**no**'} | ${c.detail ?? ''} |`);
  lines.push('', '| target | 1 conn p50 / p99 (us) | 64 conns req/s | 64 conns p99 (ms) | Anthropic 64 conns req/s | stream paced TTFB / total (ms) | stream burst TTFB / total (ms) | proxy CPU us/req (64 conns) | errors |', '|---|---|---|---|---|---|---|---|---|');
  for (const [name, t] of Object.entries(r.targets)) {
    if (!t) continue;
    const errs = ['c1', 'c64', 'c64Anthropic'].reduce((n, k) => n + (t[k]?.errors ?? 0), 0);
    lines.push(`| ${name} | ${t.c1.lat_p50_us} / ${t.c1.lat_p99_us} | ${f(t.c64.rps, 0)} | ${f(t.c64.lat_p99_us / 1000)} | ${f(t.c64Anthropic?.rps, 0)} | ${f(t.streamPaced?.ttfbP50Ms, 3)} / ${f(t.streamPaced?.totalP50Ms, 1)} | ${f(t.streamBurst?.ttfbP50Ms, 3)} / ${f(t.streamBurst?.totalP50Ms, 2)} | ${f(t.c64.proxyCpuUsPerReq, 1)} | ${errs} |`);
  }
  return lines.join('\n');
}
