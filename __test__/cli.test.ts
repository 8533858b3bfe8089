// The `iron-cage` CLI as users run it (the built dist/cli.js): agents in Node (openai SDK) and Python (urllib)
// through `iron-cage run` to a fake provider; exit codes, summaries, Ctrl-C, budget stop, serve, demo, help,
// and the live status line under a pseudo-terminal.
import os from 'node:os'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const ROOT = join(import.meta.dirname, '..')
const CLI = join(ROOT, 'dist', 'cli.js')
const KEY = 'sk-proj-cli-test-key'
const COST_PER_CALL = 0.00075 // 1000 + 1000 tokens of gpt-4o-mini at $0.15 / $0.60 per 1M
const scratch = mkdtempSync(join(tmpdir(), 'iron-cli-'))

const NODE_AGENT = `
import OpenAI from 'openai'
const client = new OpenAI({ maxRetries: 0 })
const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
console.log('node agent got:', r.choices[0].message.content)
const s = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
for await (const c of s) {}
process.exit(7)
`

const PY_AGENT = `
import json, os, sys, urllib.request
for i in range(int(os.environ.get("CALLS", "2"))):
    req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", method="POST",
        data=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        print("python agent got:", json.load(r)["choices"][0]["message"]["content"], flush=True)
`

interface Run {
  code: number | null
  /** The signal that ended the CLI: after a Ctrl-C it ends by SIGINT itself, so a calling shell stops. */
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function cli(args: string[], opts: { env?: Record<string, string>; onStart?: (p: ReturnType<typeof spawn>) => void } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    opts.onStart?.(p)
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
beforeEach(() => {
  up.reset()
  up.behaviour.usage = { inputTokens: 1000, outputTokens: 1000 }
})

const keyArgs = () => ['--provider-key', KEY, '--provider-base-url', up.url]

describe.skipIf(process.platform === 'win32')('iron-cage run', () => {
  it("runs a Node agent (openai SDK): output passes through, exit code is the child's, JSON summary matches", async () => {
    const r = await cli(['run', ...keyArgs(), '--budget', '1', '--json', '--', process.execPath, '--input-type=module', '-e', NODE_AGENT])
    expect(r.code).toBe(7)
    expect(r.stdout).toContain('node agent got: Hello from the fake provider.')
    const s = lastJson(r.stdout)
    expect(s.exitCode).toBe(7)
    expect(s.agent).toMatchObject({ status: 'crashed', exitCode: 7 })
    expect(s.spentUsd).toBeCloseTo(2 * COST_PER_CALL, 9)
    expect(s.budgetUsd).toBe(1)
    expect(s.stats.byModel['gpt-4o-mini']).toMatchObject({ requests: 2, inputTokens: 2000, outputTokens: 2000 })
    expect(s.stats.byModel['gpt-4o-mini'].costUsd).toBeCloseTo(2 * COST_PER_CALL, 9)
    expect(up.hits).toBe(2)
  })

  it('runs a Python agent (urllib) and prints the summary table', async () => {
    const r = await cli(['run', ...keyArgs(), '--budget', '0.5', '--', 'python3', '-c', PY_AGENT], { env: { CALLS: '3' } })
    expect(r.code).toBe(0)
    expect(r.stdout.match(/python agent got: Hello from the fake provider\./g)).toHaveLength(3)
    expect(r.stderr).toMatch(/iron-cage: python3 exited with code 0 after \d+\.\ds/)
    expect(r.stderr).toMatch(/gpt-4o-mini\s+3\s+3000\s+3000\s+0\s+\$0\.002250/)
    expect(r.stderr).toMatch(/total\s+3\s+3000\s+3000\s+0\s+\$0\.002250/)
    expect(r.stderr).toContain('budget: $0.002250 spent of $0.50')
    expect(r.stderr).toContain('blocked: 0')
  })

  it('Ctrl-C is passed on as SIGINT; a child that ignores it gets SIGTERM after --grace-ms, and the summary is printed', async () => {
    const marker = join(scratch, 'cli-term')
    const ready = join(scratch, 'cli-ready')
    const script = `import signal, sys, time\ndef bye(*_):\n    open(${JSON.stringify(marker)}, "w").write("TERM")\n    sys.exit(0)\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.signal(signal.SIGTERM, bye)\nopen(${JSON.stringify(ready)}, "w").write("up")\nwhile True: time.sleep(0.05)`
    const r = await cli(['run', ...keyArgs(), '--grace-ms', '300', '--', 'python3', '-c', script], {
      onStart: (p) => {
        void (async () => {
          while (!existsSync(ready)) await sleep(10)
          p.kill('SIGINT')
        })()
      },
    })
    expect(readFileSync(marker, 'utf8')).toBe('TERM')
    // Ended because of a Ctrl-C: the CLI ends by SIGINT after its summary (a calling script stops).
    expect(r.signal).toBe('SIGINT')
    expect(r.stderr).toContain('SIGINT: stopping python3 (SIGINT, SIGTERM in 0.3s, SIGKILL in 0.6s; Ctrl-C again to kill now)')
    expect(r.stderr).toMatch(/python3 was stopped: exited with code 0 \(stopped by request\)/)
  })

  it('a child that ignores SIGTERM is killed after --grace-ms; the exit code is 128 + 9', async () => {
    const ready = join(scratch, 'cli-ready-kill')
    const r = await cli(['run', ...keyArgs(), '--grace-ms', '300', '--json', '--', 'sh', '-c', `trap '' TERM; echo up > ${ready}; while :; do sleep 0.05; done`], {
      onStart: (p) => {
        void (async () => {
          while (!existsSync(ready)) await sleep(10)
          p.kill('SIGTERM')
        })()
      },
    })
    expect(r.code).toBe(137)
    expect(lastJson(r.stdout).agent).toMatchObject({ status: 'stopped', signal: 'SIGKILL' })
  })

  it('a child ended by another signal reports it by name and exits 128 + its number on this platform', async () => {
    const r = await cli(['run', ...keyArgs(), '--json', '--', 'sh', '-c', 'kill -USR1 $$'])
    expect(r.code).toBe(128 + os.constants.signals.SIGUSR1)
    expect(lastJson(r.stdout).agent).toMatchObject({ signal: 'SIGUSR1' })
  })

  it('--on-budget stop ends the agent when its budget is exhausted and says why', async () => {
    const forever = PY_AGENT.replace('range(int(os.environ.get("CALLS", "2")))', 'iter(int, 1)').replace('with urllib.request.urlopen(req) as r:\n        print("python agent got:", json.load(r)["choices"][0]["message"]["content"], flush=True)', 'try:\n        urllib.request.urlopen(req).read()\n    except Exception:\n        pass')
    const r = await cli(['run', ...keyArgs(), '--budget', '0.012', '--on-budget', 'stop', '--grace-ms', '2000', '--json', '--', 'python3', '-c', forever])
    const s = lastJson(r.stdout)
    expect(s.agent.status).toBe('stopped')
    expect(s.agent.reason).toMatch(/^budget exhausted: \$0\.\d{6} spent of \$0\.012000/)
    expect(s.budgetExhausted).toBe(true)
    expect(s.stats.blockedByReason.budget).toBeGreaterThanOrEqual(1)
    expect(s.spentUsd).toBeCloseTo(s.stats.completed * COST_PER_CALL, 9)
  })

  it('errors name the fix', async () => {
    let r = await cli(['run', '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no key source: pass --provider-key KEY')
    r = await cli(['run', ...keyArgs()])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('no command to run')
    r = await cli(['run', ...keyArgs(), '--budget', 'lots', '--', 'true'])
    expect(r.stderr).toContain("--budget expects an amount in USD such as 0.50, got 'lots'")
    r = await cli(['run', ...keyArgs(), '-u', 'python3', 'x.py'])
    expect(r.stderr).toContain("unknown option '-u' (the agent's own options go after its command")
    r = await cli(['run', ...keyArgs(), '--', 'iron-cage-no-such-program'])
    expect(r.code).toBe(127)
    expect(r.stderr).toContain("command 'iron-cage-no-such-program' not found: check that it is installed and on PATH")
    r = await cli(['run', '--bogus', '--', 'true'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain("iron-cage run: unknown option '--bogus' (the agent's own options go after its command")
    r = await cli(['serve', '--bogus'])
    expect(r.stderr).toContain("iron-cage serve: unknown option '--bogus'")
    r = await cli(['launch'])
    expect(r.stderr).toContain("unknown command 'launch'; use run, serve or demo")
    // Names every object has are not commands either (this once ran the demo).
    for (const name of ['hasOwnProperty', 'constructor', 'toString']) {
      r = await cli([name, '--help'])
      expect(r.code, name).toBe(2)
      expect(r.stderr).toContain(`unknown command '${name}'`)
    }
  })

  it('run warns up front when the key server cannot give a key, and still starts the agent', async () => {
    // A key server that does not know this token (401).
    const keys = await startFakeKeyServer({ icToken: 'ic_some_other_agent_token', key: KEY, baseUrl: up.url })
    try {
      const r = await cli(['run', '--server', keys.url, '--token', 'ic_cli_probe_token', '--', process.execPath, '-e', 'console.log("agent ran")'])
      expect(r.stderr).toContain('iron-cage: warning: no provider key yet (')
      expect(r.stderr).not.toContain('ic_cli_probe_token')
      expect(r.stdout).toContain('agent ran')
      expect(r.code).toBe(0)
    } finally {
      await keys.close()
    }
  })

  it('the agent inherits no variable holding the provider key, whatever its name', async () => {
    // The key from IRON_CAGE_PROVIDER_KEY (as the help suggests), and a copy under another name.
    const r = await cli(['run', '--provider-base-url', up.url, '--', process.execPath, '-e', 'console.log(JSON.stringify(process.env))'], {
      env: { IRON_CAGE_PROVIDER_KEY: KEY, MY_COPY_OF_THE_KEY: KEY, UNRELATED: 'stays' },
    })
    expect(r.code).toBe(0)
    const seen = JSON.parse(r.stdout.trim().split('\n')[0]!) as Record<string, string>
    expect(r.stdout).not.toContain(KEY)
    expect(seen.IRON_CAGE_PROVIDER_KEY).toBeUndefined()
    expect(seen.MY_COPY_OF_THE_KEY).toBeUndefined()
    expect(seen.UNRELATED).toBe('stays')
    expect(seen.OPENAI_API_KEY).toMatch(/^ic_/)
  })

  it('--help shows usage and examples for each command', async () => {
    for (const cmd of ['run', 'serve', 'demo']) {
      const r = await cli([cmd, '--help'])
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`Usage: iron-cage ${cmd}`)
    }
    expect((await cli(['run', '--help'])).stdout).toContain('Examples:')
    expect((await cli(['--help'])).stdout).toContain('npx iron-cage demo')
    expect((await cli(['--help'])).stdout).toContain('iron-cage --version')
  })

  it('--version and -v print the version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    for (const flag of ['--version', '-v']) {
      const r = await cli([flag])
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' })
    }
  })

  it('the CLI is built as ESM only (bin runs dist/cli.js; a CJS copy would ship unused)', () => {
    const p = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }
    expect(p.bin).toEqual({ 'iron-cage': './dist/cli.js' })
    expect(existsSync(join(ROOT, 'dist', 'cli.cjs'))).toBe(false)
  })
})

describe.skipIf(process.platform === 'win32')('iron-cage serve and demo', () => {
  it('serve prints base URLs and export lines, proxies calls, and stops on SIGINT with a summary', async () => {
    let firstLine: Promise<Record<string, unknown>> | undefined
    const r = await cli(['serve', ...keyArgs(), '--budget', '1', '--json'], {
      onStart: (p) => {
        firstLine = new Promise((resolve) => {
          let buf = ''
          p.stdout!.on('data', (d: Buffer) => {
            buf += d.toString()
            if (buf.includes('\n')) resolve(JSON.parse(buf.split('\n')[0]!))
          })
        })
        void firstLine.then(async (info) => {
          const res = await fetch(`${info.baseUrl}/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${info.apiKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
          })
          await res.json()
          p.kill('SIGINT')
        })
      },
    })
    const info = await firstLine!
    expect(info.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    expect((info.env as Record<string, string>).OPENAI_BASE_URL).toBe(info.baseUrl)
    expect(r.code).toBe(0)
    expect(lastJson(r.stdout).stats).toMatchObject({ requests: 1, completed: 1, costUsd: COST_PER_CALL })
    const text = spawnSync(process.execPath, [CLI, 'serve'], { encoding: 'utf8' })
    expect(text.stderr).toContain('no key source')
  })

  it('serve with a key server exports a token minted for the router, never the Iron Cage token', async () => {
    const token = 'ic_serve_owner_token_77'
    const keys = await startFakeKeyServer({ icToken: token, key: KEY, baseUrl: up.url })
    try {
      let firstLine: Promise<Record<string, unknown>> | undefined
      let viaIronCageToken = 0
      let viaMinted = 0
      const r = await cli(['serve', '--server', keys.url, '--token', token, '--json'], {
        onStart: (p) => {
          firstLine = new Promise((resolve) => {
            let buf = ''
            p.stdout!.on('data', (d: Buffer) => {
              buf += d.toString()
              if (buf.includes('\n')) resolve(JSON.parse(buf.split('\n')[0]!))
            })
          })
          void firstLine.then(async (info) => {
            const call = (key: string) =>
              fetch(`${info.baseUrl}/chat/completions`, {
                method: 'POST',
                headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
                body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
              })
            viaMinted = (await call(info.apiKey as string)).status
            viaIronCageToken = (await call(token)).status
            p.kill('SIGINT')
          })
        },
      })
      const info = await firstLine!
      expect(r.code).toBe(0)
      expect(info.apiKey).not.toBe(token)
      expect(JSON.stringify(info.env)).not.toContain(token)
      expect((info.env as Record<string, string>).OPENAI_API_KEY).toBe(info.apiKey)
      expect(r.stdout).not.toContain(token)
      expect(viaMinted).toBe(200)
      // The router takes only what it handed out.
      expect(viaIronCageToken).toBe(401)
    } finally {
      await keys.close()
    }
  })

  it('demo runs the real demo agent offline and shows a refusal and the summary', async () => {
    const r = await cli(['demo'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('agent ▸ calling http://127.0.0.1:')
    expect(r.stdout).toContain('agent ▸ gpt-4o streams: Hello from the offline demo provider, relayed by Iron Cage.')
    expect(r.stdout).toMatch(/refused by Iron Cage \(HTTP 402\): .*raise the budget \(budgetUsd; --budget for iron-cage run\) or lower max_tokens/)
    expect(r.stderr).toMatch(/gpt-4o\s+1\s+16\s+20\s+0\s+\$0\.000240/)
    expect(r.stderr).toContain('blocked: 1 (budget 1)')
  })

  it('demo without a loadable native binary fails before announcing a run', async () => {
    const r = await cli(['demo'], { env: { NAPI_RS_NATIVE_LIBRARY_PATH: join(scratch, 'no-such-binary.node') } })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('[NATIVE_BINDING_MISSING]')
    expect(r.stderr).toContain('no-such-binary.node')
    expect(r.stderr).not.toContain('iron-cage demo (offline)')
    expect(r.stderr).not.toContain('Your own agent')
    expect(r.stdout).toBe('')
  })

  it.skipIf(!existsSync('/usr/bin/script'))('draws the live status line on a terminal (script pseudo-terminal)', async () => {
    const agent = join(scratch, 'pty-agent.py')
    writeFileSync(agent, PY_AGENT)
    const cmd = `stty rows 24 cols 120; '${process.execPath}' '${CLI}' run ${keyArgs().join(' ')} --budget 0.5 -- python3 '${agent}'`
    // Async: the fake provider lives in this process and must keep answering while the CLI runs.
    const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const p = spawn('script', ['-qfc', cmd, '/dev/null'], { cwd: ROOT, env: { ...process.env, CALLS: '2' }, stdio: ['ignore', 'pipe', 'inherit'] })
      let stdout = ''
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      p.on('close', (status) => resolve({ status, stdout }))
    })
    expect(r.status).toBe(0)
    // Pinned to the last row (24) inside a scroll region for rows 1-23, then the region is reset.
    expect(r.stdout).toContain('\x1b[1;23r')
    expect(r.stdout).toMatch(/\x1b\[24;1H\x1b\[2Kiron-cage ▸ python3 running · \$0\.00 of \$0\.50 · 0 requests/)
    expect(r.stdout).toMatch(/iron-cage ▸ python3 exited · \$0\.001500 of \$0\.50 · 2 requests · 0 blocked · last gpt-4o-mini/)
    expect(r.stdout).toContain('\x1b[r')
    expect(r.stdout).toContain('python3 exited with code 0')
  })
})
