// `iron-cage run` with Python agents as a reviewer ran them: the agent's own arguments, signals
// (SIGINT passed on, Ctrl-C at a terminal), calls left at the provider when the agent ends, HTTP
// proxies, budget exhaustion, interactive input, the --json line, and messages in CLI terms.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { queryDb } from './fixtures/state-sqlite.mjs'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const ROOT = join(import.meta.dirname, '..')
const CLI = join(ROOT, 'dist', 'cli.js')
const KEY = 'sk-proj-cli-agents-test-key'
const scratch = mkdtempSync(join(tmpdir(), 'iron-cli-agents-'))

/** One chat call with urllib (which honours HTTP_PROXY / NO_PROXY like httpx); MODEL, MAX_TOKENS from the env. */
const PY_CALL = `
import json, os, urllib.request, urllib.error
def call(model="gpt-4o-mini", max_tokens=None, timeout=None):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens: body["max_tokens"] = max_tokens
    req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
        data=json.dumps(body).encode(),
        headers={"authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None
`

interface Run {
  code: number | null
  /** The signal that ended the CLI: after a Ctrl-C it ends by SIGINT itself, so a calling shell stops. */
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

interface CliOptions {
  env?: Record<string, string | undefined>
  onStart?: (p: ReturnType<typeof spawn>) => void
}

function cli(args: string[], opts: CliOptions = {}): Promise<Run> {
  return new Promise((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, ...opts.env }
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k]
    const t = Date.now()
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - t }))
    opts.onStart?.(p)
  })
}

/** Sends `signals` to the CLI, each once its stderr (or stdout) shows the matching text. */
function signalWhen(steps: Array<[RegExp, NodeJS.Signals]>): (p: ReturnType<typeof spawn>) => void {
  return (p) => {
    let seen = ''
    const check = (d: Buffer) => {
      seen += d.toString()
      while (steps.length && steps[0]![0].test(seen)) p.kill(steps.shift()![1])
    }
    p.stdout!.on('data', check)
    p.stderr!.on('data', check)
  }
}

/** A pseudo-terminal (`script`) running the CLI; `input` is typed into it once its output matches. */
function atTerminal(args: string[], input: Array<[RegExp, string]>, env: Record<string, string | undefined> = {}, killAfterMs = 25_000): Promise<{ code: number | null; out: string }> {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ')
  return new Promise((resolve) => {
    const all: Record<string, string | undefined> = { ...process.env, ...env }
    for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k]
    const p = spawn('script', ['-qefc', `stty rows 24 cols 120; ${quoted}`, '/dev/null'], { cwd: ROOT, env: all, stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      while (input.length && input[0]![0].test(out)) p.stdin.write(input.shift()![1])
    })
    // A hung terminal (the failure some tests look for) ends the test, not the run.
    const timer = setTimeout(() => p.kill('SIGKILL'), killAfterMs)
    p.on('close', (code) => (clearTimeout(timer), resolve({ code, out })))
  })
}

const lastJson = (s: string) => JSON.parse(s.trim().split('\n').at(-1)!)

let up: FakeProvider
beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('dist/cli.js is missing: run npm run build first')
  up = await startFakeProvider({ expectedKey: KEY })
})
afterAll(async () => {
  await up.close()
  rmSync(scratch, { recursive: true, force: true })
})
beforeEach(() => up.reset())

const keyArgs = () => ['--provider-key', KEY, '--provider-base-url', up.url]

describe.skipIf(process.platform === 'win32')('iron-cage run with Python agents', () => {
  it("options end at the command: the agent's own flags are its own, even with iron-cage's names", async () => {
    const agent = 'import json, sys; print("ARGS " + json.dumps(sys.argv[1:]))'
    const r = await cli(['run', ...keyArgs(), '--budget', '0.05', '--json', 'python3', '-c', agent, '--budget', '100', '--name', 'researcher', '--json', '--help', '--budget', '-1', '--', 'x'])
    expect(r.code).toBe(0)
    // Passed on as given: a negative number after an option with one of iron-cage's names too (`--budget -1`).
    expect(JSON.parse(/ARGS (.*)/.exec(r.stdout)![1]!)).toEqual(['--budget', '100', '--name', 'researcher', '--json', '--help', '--budget', '-1', '--', 'x'])
    const s = lastJson(r.stdout)
    expect(s.budgetUsd).toBe(0.05)
    expect(s.agent.name).toBe('python3')
    // Without --json of its own, iron-cage prints the text summary: the agent's --json is not iron-cage's.
    const t = await cli(['run', ...keyArgs(), 'python3', '-c', agent, '--json'])
    expect(t.stderr).toContain('python3 exited with code 0')
    expect(t.stdout.trim()).toBe('ARGS ["--json"]')
  })

  it("an agent's output reaches a reader slow to take it whole: the agent's pipes stay blocking", async () => {
    // 2 MB to stderr while the reader takes nothing for 1.5 s: the pipe fills and the agent's
    // writes must wait, not fail (Node makes a pipe non-blocking when it opens its stream, and the
    // agent shares the description: Python then raised BlockingIOError).
    const agent = 'import sys\nfor i in range(2000): sys.stderr.write("y" * 1000 + "\\n")\nsys.stderr.flush()\nprint("done")'
    const r = await cli(['run', ...keyArgs(), 'python3', '-c', agent], {
      onStart: (p) => {
        p.stderr!.pause()
        setTimeout(() => p.stderr!.resume(), 1500)
      },
    })
    expect(r.stderr).not.toContain('BlockingIOError')
    expect(r.stderr.split('\n').filter((l) => l === 'y'.repeat(1000)).length).toBe(2000)
    expect(r.stdout).toContain('done')
    expect(r.code).toBe(0)
  })

  it('SIGINT goes on to the agent as SIGINT: Python runs its finally and flushes buffered output', async () => {
    const agent = `import sys, time\ntry:\n    for i in range(5): print("result line", i)\n    sys.stderr.write("ready\\n"); sys.stderr.flush()\n    time.sleep(100)\nfinally:\n    print("cleanup ran")`
    const r = await cli(['run', ...keyArgs(), '--', 'python3', '-c', agent], { env: { PYTHONUNBUFFERED: undefined }, onStart: signalWhen([[/ready/, 'SIGINT']]) })
    expect(r.stdout).toBe('result line 0\nresult line 1\nresult line 2\nresult line 3\nresult line 4\ncleanup ran\n')
    expect(r.stderr).toContain('SIGINT: stopping python3 (SIGINT, SIGTERM in 5.0s, SIGKILL in 10s; Ctrl-C again to kill now)')
    expect(r.stderr).toContain('KeyboardInterrupt')
    expect(r.stderr).toMatch(/python3 was stopped: ended by SIGINT \(stopped by request\)/)
    // After its summary the CLI ends by SIGINT itself (a shell reports 130), as timeout and env do.
    expect(r.signal).toBe('SIGINT')
  })

  it('SIGQUIT (Ctrl-\\) is passed on like Ctrl-C: the agent gets it, the summary is printed, iron-cage ends by it', async () => {
    const agent = `import signal, sys, time\nsignal.signal(signal.SIGQUIT, lambda *a: (print("got SIGQUIT", flush=True), sys.exit(3)))\nsys.stderr.write("ready\\n"); sys.stderr.flush()\ntime.sleep(100)`
    const r = await cli(['run', ...keyArgs(), '--', 'python3', '-c', agent], { onStart: signalWhen([[/ready/, 'SIGQUIT']]) })
    expect(r.stdout).toBe('got SIGQUIT\n')
    expect(r.stderr).toContain('SIGQUIT: stopping python3 (SIGQUIT, SIGTERM in 5.0s, SIGKILL in 10s')
    expect(r.stderr).toMatch(/python3 was stopped: exited with code 3 \(stopped by request\)/)
    expect(r.signal).toBe('SIGQUIT')
  })

  it('calls left at the provider: the wait is announced, a second Ctrl-C ends it, their holds are charged in the state file', async () => {
    up.behaviour.delayBeforeHeadersMs = 60_000
    const state = join(scratch, 'unsettled.db')
    const agent = `${PY_CALL}\nimport sys\ntry:\n    call(max_tokens=20)\nfinally:\n    print("cleanup ran", flush=True)`
    const r = await cli(['run', ...keyArgs(), '--budget', '1', '--state', state, '--grace-ms', '1000', '--', 'python3', '-c', agent], {
      onStart: (p) => {
        // The first Ctrl-C once the provider has the call, the second once the wait is announced.
        void (async () => {
          while (up.requests.length < 1) await sleep(10)
          p.kill('SIGINT')
        })()
        signalWhen([[/still at the provider: waiting up to \d+ min/, 'SIGINT']])(p)
      },
    })
    expect(r.stdout).toContain('cleanup ran')
    expect(r.stderr).toContain('iron-cage: python3 ended with 1 call still at the provider: waiting up to 15 min for it to settle, so that it is charged (Ctrl-C again to stop waiting)')
    expect(r.stderr).toContain('SIGINT: not waiting for the 1 call still at the provider')
    expect(r.stderr).toMatch(/not waited for: 1 call still at the provider \(the provider bills it\); up to \$0\.\d+ held for it is charged in spent; charged at its hold in .*unsettled\.db/)
    expect(r.signal).toBe('SIGINT')
    expect(r.ms).toBeLessThan(20_000)
    const [rows, holds, agents] = queryDb(state, ["SELECT cost_micros, estimated, error_code FROM requests", 'SELECT * FROM holds', 'SELECT spent_micros FROM agents'])
    expect(rows).toHaveLength(1)
    expect(rows![0]).toMatchObject({ estimated: 1, error_code: 'unsettled' })
    expect(Number(rows![0]!.cost_micros)).toBeGreaterThan(0)
    expect(holds).toHaveLength(0)
    // The agent's row agrees with its ledger.
    expect(agents).toHaveLength(1)
    expect(Number(agents![0]!.spent_micros)).toBe(Number(rows![0]!.cost_micros))
  }, 30_000)

  it('an agent that gave up on a call and exited: the CLI says what it waits for, Ctrl-C ends the wait, the duration is the agent\'s', async () => {
    up.behaviour.delayBeforeHeadersMs = 60_000
    const agent = `${PY_CALL}\nimport socket\ntry:\n    call(timeout=0.5)\nexcept (socket.timeout, TimeoutError, OSError) as e:\n    print("agent gave up:", type(e).__name__, flush=True)`
    const r = await cli(['run', ...keyArgs(), '--json', '--', 'python3', '-c', agent], {
      onStart: signalWhen([[/still at the provider: waiting up to/, 'SIGINT']]),
    })
    expect(r.stdout).toContain('agent gave up')
    expect(r.stderr).toContain('(Ctrl-C to stop waiting)')
    // Its Ctrl-C ended the CLI: a calling script stops too.
    expect(r.signal).toBe('SIGINT')
    expect(r.ms).toBeLessThan(20_000)
    const s = lastJson(r.stdout)
    expect(s.agent).toMatchObject({ status: 'exited', settling: null, unsettled: { calls: 1, heldMicros: 0, chargedInStateFile: false } })
    expect(s.durationMs).toBeLessThan(5_000)
  }, 30_000)

  it('HTTP_PROXY in the environment does not get the calls: 127.0.0.1 and localhost are added to NO_PROXY and no_proxy', async () => {
    const agent = `${PY_CALL}\nimport os\nprint("NO_PROXY=" + os.environ["NO_PROXY"])\nprint("no_proxy=" + os.environ["no_proxy"])\nprint("status", call()[0])`
    const r = await cli(['run', ...keyArgs(), '--', 'python3', '-c', agent], {
      // A proxy that is not there (the discard port): a call sent to it fails.
      env: { HTTP_PROXY: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', ALL_PROXY: 'http://127.0.0.1:9', NO_PROXY: 'corp.example', no_proxy: undefined },
    })
    expect(r.stdout).toContain('NO_PROXY=corp.example,127.0.0.1,localhost\n')
    expect(r.stdout).toContain('no_proxy=corp.example,127.0.0.1,localhost\n')
    expect(r.stdout).toContain('status 200')
    expect(r.code).toBe(0)
  })

  it("serve's export lines add the router's hosts to the pasting shell's NO_PROXY and no_proxy", async () => {
    let lines: string[] = []
    const r = await cli(['serve', ...keyArgs()], {
      onStart: (p) => {
        let out = ''
        p.stdout!.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes('Ctrl-C to stop.')) {
            lines = out.split('\n').filter((l) => l.startsWith('export '))
            p.kill('SIGINT')
          }
        })
      },
    })
    expect(r.code).toBe(0)
    const shell = (pre: string) =>
      new Promise<string>((resolve) => {
        const p = spawn('sh', ['-c', `${pre}\n${lines.join('\n')}\necho "$NO_PROXY|$no_proxy"`], { env: { PATH: process.env.PATH } })
        let out = ''
        p.stdout.on('data', (d: Buffer) => (out += d.toString()))
        p.on('close', () => resolve(out.trim()))
      })
    expect(await shell('')).toBe('127.0.0.1,localhost|127.0.0.1,localhost')
    expect(await shell('NO_PROXY=corp.example')).toBe('corp.example,127.0.0.1,localhost|corp.example,127.0.0.1,localhost')
    // As run sets them: each list is its own, else the other case's, plus the router's hosts.
    expect(await shell('no_proxy=.lan')).toBe('.lan,127.0.0.1,localhost|.lan,127.0.0.1,localhost')
    expect(await shell('NO_PROXY=corp.internal no_proxy=.svc.local')).toBe('corp.internal,127.0.0.1,localhost|.svc.local,127.0.0.1,localhost')
  })

  it('the run time of an agent that ends at once is never negative', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await cli(['run', ...keyArgs(), '--json', '--', 'true'])
      expect(r.code).toBe(0)
      const s = lastJson(r.stdout)
      expect(s.durationMs).toBeGreaterThanOrEqual(0)
      expect(s.durationMs).toBe(s.agent.endedAtMs - s.agent.startedAtMs)
    }
  })

  it('--id with --state: the agent is the same across runs, its spent carries over and --budget covers them all', async () => {
    const state = join(scratch, 'fixed-id.db')
    const agent = `${PY_CALL}\nprint("status", call(max_tokens=20)[0], flush=True)`
    const run = (budget: string, id = 'researcher-1') => cli(['run', ...keyArgs(), '--id', id, '--state', state, '--budget', budget, '--json', '--', 'python3', '-c', agent])
    const first = lastJson((await run('1')).stdout)
    expect(first.agent.id).toBe('researcher-1')
    expect(first.spentUsd).toBeGreaterThan(0)
    const second = await run('1')
    expect(second.stdout).toContain('status 200')
    expect(lastJson(second.stdout).spentUsd).toBeCloseTo(first.spentUsd * 2, 9)
    // A budget that the earlier runs used up refuses the call; another id starts from zero.
    const third = await run((first.spentUsd * 2.5).toFixed(6))
    expect(third.stdout).toContain('status 402')
    const other = await run((first.spentUsd * 2.5).toFixed(6), 'researcher-2')
    expect(other.stdout).toContain('status 200')
    const [agents] = queryDb(state, ['SELECT id, spent_micros FROM agents ORDER BY id'])
    expect(agents!.map((a) => a.id)).toEqual(['researcher-1', 'researcher-2'])
    expect(Number(agents![0]!.spent_micros)).toBe(Math.round(first.spentUsd * 2e6))
    // Bad ids and --id without --state are refused in CLI terms.
    const bad = await cli(['run', ...keyArgs(), '--id', 'a b', '--state', state, '--', 'python3', '-c', 'pass'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('invalid --id: must be 1 to 64 ASCII letters')
    const noState = await cli(['run', ...keyArgs(), '--id', 'x', '--', 'python3', '-c', 'pass'])
    expect(noState.code).toBe(2)
    expect(noState.stderr).toContain('--id needs --state PATH')
  }, 30_000)

  it('--on-budget stop: one refused call is not exhaustion (the agent falls back to a cheaper call)', async () => {
    const agent = `${PY_CALL}\nprint("first", call(model="gpt-4o")[0], flush=True)\nprint("fallback", call(max_tokens=50)[0], flush=True)`
    const r = await cli(['run', ...keyArgs(), '--budget', '0.10', '--on-budget', 'stop', '--json', '--', 'python3', '-c', agent])
    expect(r.stdout).toContain('first 402')
    expect(r.stdout).toContain('fallback 200')
    const s = lastJson(r.stdout)
    expect(s.agent).toMatchObject({ status: 'exited', exitCode: 0 })
    expect(s.budgetExhausted).toBe(false)
    expect(r.code).toBe(0)
  })

  it('--on-budget stop: an agent whose calls keep being refused is stopped after 3 in a row, in CLI terms', async () => {
    const agent = `${PY_CALL}\nimport time\nwhile True:\n    print(call(model="gpt-4o")[0], flush=True)\n    time.sleep(0.05)`
    const r = await cli(['run', ...keyArgs(), '--budget', '0.10', '--on-budget', 'stop', '--grace-ms', '2000', '--', 'python3', '-c', agent])
    // The SIGTERM may come before the agent prints the third.
    expect(new Set(r.stdout.trim().split('\n'))).toEqual(new Set(['402']))
    expect(Number(/blocked: (\d+) \(budget \1\)/.exec(r.stderr)?.[1])).toBeGreaterThanOrEqual(3)
    expect(r.stderr).toMatch(
      /python3 was stopped: ended by SIGTERM \(budget exhausted: \$0\.000000 spent of \$0\.100000; 3 calls in a row were refused: each could cost more than the \$0\.100000 left \(--on-budget stop\); raise --budget to let it run longer\)/,
    )
    expect(r.code).toBe(143)
  })

  it.skipIf(!existsSync('/usr/bin/script'))('at a terminal iron-cage keeps it and gets Ctrl-C: the agent is stopped (SIGINT), not restarted, even when it exits 1', async () => {
    const agent = join(scratch, 'exit1.py')
    writeFileSync(agent, 'import sys, time\nprint("isatty:", sys.stdin.isatty(), repr(sys.stdin.read()), flush=True)\ntry:\n    time.sleep(100)\nexcept KeyboardInterrupt:\n    print("cleanup ran", flush=True)\n    sys.exit(1)\n')
    const c = await atTerminal(['run', ...keyArgs(), '--restarts', '3', '--grace-ms', '2000', '--', 'python3', agent], [[/isatty: False ''/, '\x03']])
    // Its stdin is /dev/null: it does not compete with the shell for the terminal.
    expect(c.out).toContain("isatty: False ''")
    expect(c.out).toContain('SIGINT: stopping python3 (SIGINT, SIGTERM in 2.0s')
    expect(c.out).toContain('cleanup ran')
    expect(c.out).toContain('python3 was stopped: exited with code 1 (stopped by request)')
    expect(c.out).not.toContain('restart')
    expect(c.code).toBe(130)
  }, 30_000)

  it.skipIf(!existsSync('/usr/bin/script'))('--interactive: the agent reads the terminal (input() works) and gets Ctrl-C as SIGINT directly', async () => {
    const chat = join(scratch, 'chat.py')
    writeFileSync(chat, 'import sys\nprint("isatty:", sys.stdin.isatty())\nprint("hello", input("Your name? "))\n')
    const r = await atTerminal(['run', ...keyArgs(), '--interactive', '--', 'python3', chat], [[/Your name\? /, 'Alice\n']])
    expect(r.out).toContain('isatty: True')
    expect(r.out).toContain('hello Alice')
    expect(r.out).toContain('python3 exited with code 0')
    expect(r.code).toBe(0)

    const loop = join(scratch, 'loop.py')
    writeFileSync(loop, 'import time\ntry:\n    print("ready", flush=True)\n    time.sleep(100)\nfinally:\n    print("cleanup ran", flush=True)\n')
    const c = await atTerminal(['run', ...keyArgs(), '--interactive', '--restarts', '3', '--', 'python3', loop], [[/ready/, '\x03']])
    expect(c.out).toContain('cleanup ran')
    // The user's Ctrl-C, not a crash: no restart.
    expect(c.out).toContain('python3 was stopped: ended by SIGINT (interrupted at the terminal (Ctrl-C))')
    expect(c.out).not.toContain('restart')
    expect(c.code).toBe(130)
  }, 30_000)

  it.skipIf(!existsSync('/usr/bin/script'))('--interactive: Ctrl-Z does not freeze a Node agent (Node resets the ignored SIGTSTP): it is resumed, Ctrl-C still ends it', async () => {
    const ticker = 'let i = 0; setInterval(() => console.log("tick " + ++i), 100)'
    const r = await atTerminal(['run', ...keyArgs(), '--interactive', '--', process.execPath, '-e', ticker], [[/tick 3\b/, '\x1a'], [/tick 12\b/, '\x03']], {}, 20_000)
    expect(r.out).toContain('tick 12')
    expect(r.out).toMatch(/ was stopped: ended by SIGINT \(interrupted at the terminal/)
    expect(r.code).toBe(130)
  }, 30_000)

  it('Ctrl-C stops a shell loop that runs iron-cage, as it would without it', async () => {
    const agent = join(scratch, 'sleeper.py')
    writeFileSync(agent, 'import time\nprint("ready", flush=True)\ntime.sleep(100)\n')
    const cmd = [process.execPath, CLI, 'run', ...keyArgs(), '--', 'python3', agent].map((a) => `'${a}'`).join(' ')
    const out = await new Promise<string>((resolve) => {
      // Its own process group, as a terminal's job: the Ctrl-C goes to the group (bash and iron-cage).
      const p = spawn('bash', ['-c', `for i in 1 2; do ${cmd}; echo next; done`], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
      let seen = ''
      const on = (d: Buffer) => {
        seen += d.toString()
        if (/ready/.test(seen) && !seen.includes('\u0000')) {
          seen += '\u0000'
          process.kill(-p.pid!, 'SIGINT')
        }
      }
      p.stdout.on('data', on)
      p.stderr.on('data', on)
      const timer = setTimeout(() => process.kill(-p.pid!, 'SIGKILL'), 20_000)
      p.on('close', () => (clearTimeout(timer), resolve(seen)))
    })
    expect(out).toContain('python3 was stopped: ended by SIGINT')
    expect(out).not.toContain('next')
  }, 30_000)

  it('--json: the summary is on a line of its own even when the agent output does not end with one', async () => {
    const r = await cli(['run', ...keyArgs(), '--json', '--', 'python3', '-c', 'import sys; sys.stdout.write("50% done")'])
    expect(r.stdout.startsWith('50% done\n{')).toBe(true)
    expect(lastJson(r.stdout).exitCode).toBe(0)
  })

  it('messages use the CLI flags, say what is wrong with a value, and never echo a key', async () => {
    const errors: string[] = []
    const run = async (args: string[], opts: CliOptions = {}) => {
      const r = await cli(args, opts)
      errors.push(r.stderr)
      return r
    }
    let r = await run(['run', ...keyArgs(), '--budget', '-1', '--', 'true'])
    expect(r.stderr).toContain("--budget must be 0 or more, got '-1'")
    r = await run(['run', ...keyArgs(), '--restarts', '-2', '--', 'true'])
    expect(r.stderr).toContain("--restarts must be 0 or more, got '-2'")
    r = await run(['run', ...keyArgs(), '--grace-ms', '99999999', '--', 'true'])
    expect(r.stderr).toContain("--grace-ms must be at most 3600000, got '99999999'")
    expect(r.stderr).not.toContain('graceMs')
    r = await run(['run', '--provider-key', KEY, '--provider-base-url', 'http://10.0.0.1', '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--provider-base-url')
    expect(r.stderr).not.toContain('providerBaseUrl')
    // A key given by mistake as another flag's value.
    r = await run(['run', ...keyArgs(), '--on-budget', KEY, '--', 'true'])
    expect(r.stderr).toContain("--on-budget expects keep-running or stop, got '[redacted]'")
    r = await run(['run', '--provider-base-url', up.url, '--budget', KEY, '--', 'true'], { env: { IRON_CAGE_PROVIDER_KEY: KEY } })
    expect(r.stderr).toContain("got '[redacted]'")
    r = await run(['run', ...keyArgs(), '--budget', 'sk-ant-api03-abcdefghijklmnop', '--', 'true'])
    expect(r.stderr).toContain("got '[redacted]'")
    for (const e of errors) expect(e).not.toContain(KEY)
  })

  it('a script whose #! interpreter is missing is reported as such, not as a missing command', async () => {
    const script = join(scratch, 'old-venv.py')
    writeFileSync(script, '#!/opt/iron-cage-no-such-venv/bin/python3\nprint(1)\n')
    chmodSync(script, 0o755)
    const r = await cli(['run', ...keyArgs(), '--', script])
    expect(r.code).toBe(127)
    expect(r.stderr).toContain("exists, but its interpreter '/opt/iron-cage-no-such-venv/bin/python3' (its #! line) was not found")
  })
})
