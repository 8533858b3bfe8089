// The PII scanner benchmark of crates/iron_safety (single-pass scanner vs one regex pass per type).
import { spawnSync } from 'node:child_process';

/** Run `cargo run --release -p iron_safety --example scan_bench` and parse its MB/s lines. */
export function runPiiBench(srcDir, targetDir) {
  console.error('[bench] PII scanner benchmark (cargo run --release -p iron_safety --example scan_bench)');
  const r = spawnSync('cargo', ['run', '--quiet', '--release', '-p', 'iron_safety', '--example', 'scan_bench'], {
    cwd: srcDir, env: { ...process.env, CARGO_TARGET_DIR: targetDir }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) return { error: `scan_bench failed (status ${r.status})` };
  const out = { raw: r.stdout };
  let section;
  for (const line of r.stdout.split('\n')) {
    if (/^few hits/.test(line)) section = out.few = {};
    else if (/^many hits/.test(line)) section = out.many = {};
    const rate = /([\d.]+) MB\/s/.exec(line);
    if (section && rate && /single-pass/.test(line)) section.scanner = Number(rate[1]);
    if (section && rate && /naive/.test(line)) section.naive = Number(rate[1]);
    const sp = /speed-up ([\d.]+)x/.exec(line);
    if (section && sp) section.speedup = Number(sp[1]);
  }
  return out;
}
