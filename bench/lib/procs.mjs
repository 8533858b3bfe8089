// Child processes of the benchmark: the fake upstream, nginx, the router host, wrk; and tool checks.
import { spawn, fork, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Whether an executable is on PATH (nginx lives in /usr/sbin, often not on a user's PATH). */
export function which(cmd) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = path.join(d, cmd);
    if (spawnSync('test', ['-x', p]).status === 0) return p;
  }
  return null;
}

/** Run a command to completion, inheriting output; throw with its name when it fails. */
export function runOrThrow(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status})`);
}

/** A free loopback port (bound and released; good enough for a benchmark on a quiet machine). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Resolve once a TCP connect to the port succeeds. */
export async function waitForPort(port, ms = 10000) {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start one of the bench's Rust servers, which prints `listening PORT`; resolves with its port, pid and a stop. */
function startListening(binary, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    child.stdout.setEncoding('utf8');
    child.stdout.once('data', (line) => {
      const m = /listening (\d+)/.exec(line);
      if (!m) return reject(new Error(`${path.basename(binary)} said: ${line}`));
      resolve({ port: Number(m[1]), pid: child.pid, stop: () => child.kill('SIGTERM') });
    });
  });
}

/** Start the Rust fake upstream. */
export function startUpstream(binary, threads = 1) {
  return startListening(binary, ['0', String(threads)]);
}

/** nginx as a production-style reverse proxy in front of the upstream, from a generated config. */
export async function startNginx(nginxBin, upstreamPort) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'iron-bench-nginx-'));
  chmodSync(dir, 0o755); // workers may run as an unprivileged user and must reach the temp paths
  const port = await freePort();
  const conf = `worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  client_max_body_size 32m;
  upstream fake {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`;
  writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn(nginxBin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', 'stderr'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  await waitForPort(port);
  return {
    port,
    pid: child.pid,
    conf,
    stop: async () => {
      child.kill('SIGQUIT');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Start `bench_floor` (a bare hyper proxy on two tokio workers, or with `perCore` one single-threaded runtime per thread) in front of the upstream. */
export function startFloor(binary, upstreamPort, perCore = false) {
  return startListening(binary, ['0', String(upstreamPort), '2', ...(perCore ? ['per-core'] : [])]);
}

/** Fork the router host; returns `call(cmd, fields)` for IPC requests, its pid and a kill. */
export function startHost(script, env) {
  return new Promise((resolve, reject) => {
    const child = fork(script, [], { env: { ...process.env, ...env }, execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const pending = new Map();
    let next = 1;
    child.on('message', (m) => {
      if (m.id === 0) {
        resolve({
          pid: child.pid,
          rssAtBoot: m.rss,
          call: (cmd, fields = {}) =>
            new Promise((res, rej) => {
              const id = next++;
              pending.set(id, { res, rej });
              child.send({ id, cmd, ...fields });
            }),
          kill: async () => {
            if (child.exitCode !== null) return;
            child.kill('SIGTERM');
            await new Promise((r) => child.once('exit', r));
          },
        });
        return;
      }
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.ok) p?.res(m);
      else p?.rej(new Error(m.error));
    });
    child.once('exit', (code) => {
      for (const p of pending.values()) p.rej(new Error(`router host exited (${code})`));
      reject(new Error(`router host exited (${code}) before it was ready`));
    });
  });
}

/**
 * Run wrk with the POST script; resolves with the parsed BENCH_JSON line plus rps.
 * `stopWhen` (optional) is polled every 250 ms and ends the run with SIGINT (wrk then reports normally).
 */
export function runWrk({ url, bodyFile, headers, threads, connections, seconds, luaScript, stopWhen }) {
  return new Promise((resolve, reject) => {
    const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '--timeout', '10s', '-s', luaScript, url];
    const child = spawn('wrk', args, {
      env: { ...process.env, BENCH_BODY: bodyFile, BENCH_HEADERS: headers.join('\n') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    let poll;
    if (stopWhen) {
      poll = setInterval(async () => {
        if (await stopWhen()) {
          clearInterval(poll);
          child.kill('SIGINT');
        }
      }, 250);
    }
    child.once('error', reject);
    child.once('exit', () => {
      clearInterval(poll);
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (!line) return reject(new Error(`wrk gave no result:\n${out}`));
      const r = JSON.parse(line.slice('BENCH_JSON '.length));
      r.rps = r.requests / (r.duration_us / 1e6);
      r.errors = r.err_connect + r.err_read + r.err_write + r.err_status + r.err_timeout;
      resolve(r);
    });
  });
}

/** CPU time (user + system, µs) used so far by these processes, all threads included (Linux /proc). */
export function cpuMicros(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch {
      // the process is gone: nothing to add
    }
  }
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

/** A process and its direct children (nginx master and workers). */
export function withChildren(pid) {
  const out = [pid];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // raced with an exiting process
    }
  }
  return out;
}
