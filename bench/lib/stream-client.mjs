// Times streamed answers one after another on a keep-alive connection: response head, first body
// byte and end, measured from the moment the request is written.
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function once(url, body, headers) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let head = 0n;
    let first = 0n;
    let bytes = 0;
    let text = '';
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      head = process.hrtime.bigint();
      res.on('data', (chunk) => {
        if (!first) first = process.hrtime.bigint();
        bytes += chunk.length;
        // Keep only the tail: enough to see how the stream ended.
        text = (text + chunk.toString('latin1')).slice(-256);
      });
      res.on('end', () => {
        const end = process.hrtime.bigint();
        const ms = (t) => Number(t - t0) / 1e6;
        const complete = text.includes('[DONE]') || text.includes('message_stop');
        resolve({ status: res.statusCode, headMs: ms(head), ttfbMs: ms(first || end), totalMs: ms(end), bytes, complete });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * `reps` streams per target after one warm-up each, the targets interleaved (in each round one stream
 * per target, starting with a different target each round): on a shared machine whatever slows one
 * target's streams slows the others' too, so their ratios hold. Medians and p90 of first-byte and
 * total times per target.
 */
export async function timeStreamsInterleaved(targets, reps) {
  for (const t of targets) await once(t.url, t.body, t.headers);
  const runs = targets.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (let k = 0; k < targets.length; k++) {
      const j = (i + k) % targets.length;
      const t = targets[j];
      runs[j].push(await once(t.url, t.body, t.headers));
    }
  }
  return runs.map((r) => summary(r, reps));
}

function summary(runs, reps) {
  const bad = runs.filter((r) => r.status !== 200 || !r.complete).length;
  return {
    reps,
    bad,
    status: runs[0].status,
    bytes: runs[0].bytes,
    ttfbP50Ms: pct(runs.map((r) => r.ttfbMs), 50),
    ttfbP90Ms: pct(runs.map((r) => r.ttfbMs), 90),
    totalP50Ms: pct(runs.map((r) => r.totalMs), 50),
    totalP90Ms: pct(runs.map((r) => r.totalMs), 90),
  };
}
