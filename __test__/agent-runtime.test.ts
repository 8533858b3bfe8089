// AgentRuntime end to end: real agent processes (Node with the openai SDK, Python with urllib) calling a fake
// provider through their own routers; stop (SIGTERM, SIGKILL after the grace, grandchildren), restart policy,
// budget exhaustion, and the typed `agent` events.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { AgentRuntime, IronCageError, type AgentEvent } from '../src-ts/index.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const KEY = 'sk-proj-agent-runtime-test'
const ROOT = join(import.meta.dirname, '..')
// 1000 input + 1000 output tokens of gpt-4o-mini at $0.15 / $0.60 per 1M tokens.
const COST_PER_CALL = 0.00075

/** Two plain calls and one streamed call with the openai SDK, configured only by the environment. */
const NODE_AGENT = `
import OpenAI from 'openai'
const client = new OpenAI({ maxRetries: 0 })
for (const q of ['one', 'two']) {
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: q }] })
  console.log('answer:', r.choices[0].message.content)
}
const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'three' }] })
let text = ''
for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
console.log('streamed:', text)
process.exit(Number(process.env.EXIT_CODE ?? 0))
`

/** Calls chat/completions CALLS times (forever when 0) with urllib, then exits with EXIT_CODE. */
const PY_AGENT = `
import json, os, sys, time, urllib.request, urllib.error
base, key = os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
calls, n = int(os.environ.get("CALLS", "1")), 0
while calls == 0 or n < calls:
    n += 1
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(base + "/chat/completions", data=body, method="POST",
        headers={"authorization": "Bearer " + key, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            json.load(r)
    except urllib.error.HTTPError as e:
        pass
    time.sleep(0.02)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
`

/** Gone: no such process, or a zombie waiting for a reaper (it no longer runs). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  // Linux containers may lack a reaping PID 1; elsewhere orphans are reaped promptly.
  if (process.platform !== 'linux') return false
  try {
    return /\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(10)
  }
}

let up: FakeProvider
let runtime: AgentRuntime
let events: AgentEvent[]
const scratch = mkdtempSync(join(tmpdir(), 'iron-agents-'))

beforeAll(async () => {
  up = await startFakeProvider({ expectedKey: KEY })
})
afterAll(async () => {
  await up.close()
  rmSync(scratch, { recursive: true, force: true })
})

function freshRuntime(extra: { statePath?: string } = {}): AgentRuntime {
  runtime = new AgentRuntime({ providerKey: KEY, providerBaseUrl: up.url, ...extra })
  events = []
  runtime.on('agent', (e) => events.push(e))
  up.reset()
  up.behaviour.usage = { inputTokens: 1000, outputTokens: 1000 }
  return runtime
}

afterEach(async () => {
  await runtime?.shutdown({ graceMs: 500 })
})

describe.skipIf(process.platform === 'win32')('AgentRuntime', () => {
  it('runs a Node agent (openai SDK) through its own router: spend, stats, exit code, events', async () => {
    const rt = freshRuntime()
    const agent = rt.startAgent({
      name: 'node-agent',
      command: process.execPath,
      args: ['--input-type=module', '-e', NODE_AGENT],
      cwd: ROOT,
      env: { EXIT_CODE: '0' },
      budgetUsd: 1,
    })
    expect(agent.status).toBe('running')
    expect(agent.pid).toBeGreaterThan(1)
    expect(agent.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
    const info = await agent.wait()
    expect(info).toMatchObject({ status: 'exited', exitCode: 0, signal: null, finished: true, name: 'node-agent' })
    const m = agent.metrics()
    expect(m).toMatchObject({ requests: 3, completed: 3, blocked: 0, budgetUsd: 1, lastModel: 'gpt-4o-mini', budgetExhausted: false })
    expect(m.spentUsd).toBeCloseTo(3 * COST_PER_CALL, 9)
    expect(m.lastActivityMs).toBeGreaterThan(Date.now() - 30_000)
    const stats = agent.stats()
    expect(stats.byModel['gpt-4o-mini']).toMatchObject({ requests: 3, inputTokens: 3000, outputTokens: 3000 })
    expect(stats.costUsd).toBeCloseTo(3 * COST_PER_CALL, 9)
    // The provider saw the real key; the agent only ever had its router's token.
    expect(up.requests.map((r) => r.apiKey)).toEqual([KEY, KEY, KEY])
    await until(() => events.length >= 2)
    expect(events.map((e) => [e.action, e.agentId, e.name])).toEqual([
      ['started', agent.id, 'node-agent'],
      ['exited', agent.id, 'node-agent'],
    ])
    expect(rt.list().map((a) => a.id)).toEqual([agent.id])
  })

  it("runs a Python agent (urllib) and reports the child's exit code", async () => {
    const rt = freshRuntime()
    const agent = rt.startAgent({ command: 'python3', args: ['-c', PY_AGENT], env: { CALLS: '2', EXIT_CODE: '3' } })
    const info = await agent.wait()
    expect(info).toMatchObject({ status: 'crashed', exitCode: 3, reason: 'exited with code 3', name: 'python3' })
    expect(agent.metrics().spentUsd).toBeCloseTo(2 * COST_PER_CALL, 9)
    expect(up.hits).toBe(2)
  })

  it('while its calls at the provider settle, an agent that exited has its final status (not running), finished only after', async () => {
    const rt = freshRuntime()
    up.behaviour.delayBeforeHeadersMs = 60_000
    const agent = rt.startAgent({
      command: 'python3',
      args: ['-c', PY_AGENT.replace('urllib.request.urlopen(req)', 'urllib.request.urlopen(req, timeout=0.3)').replace('except urllib.error.HTTPError as e:', 'except Exception:')],
    })
    await until(() => agent.info().settling !== null, 10_000)
    expect(agent.info()).toMatchObject({ status: 'exited', exitCode: 0, finished: false, settling: { calls: 1 } })
    await agent.stop()
    expect(await agent.wait()).toMatchObject({ status: 'exited', exitCode: 0, finished: true, settling: null })
  }, 20_000)

  it('stop: SIGTERM reaches the agent, which exits by itself within the grace', async () => {
    const rt = freshRuntime()
    const marker = join(scratch, 'sigterm')
    const ready = join(scratch, 'sigterm-ready')
    const agent = rt.startAgent({
      command: 'python3',
      args: ['-c', `import signal, sys, time\ndef bye(*_):\n    open(${JSON.stringify(marker)}, "w").write("TERM")\n    sys.exit(0)\nsignal.signal(signal.SIGTERM, bye)\nopen(${JSON.stringify(ready)}, "w").write("up")\nwhile True: time.sleep(0.05)`],
    })
    await until(() => existsSync(ready))
    const started = Date.now()
    const info = await rt.stopAgent(agent.id, { graceMs: 5000 })
    expect(Date.now() - started).toBeLessThan(3000)
    expect(readFileSync(marker, 'utf8')).toBe('TERM')
    expect(info).toMatchObject({ status: 'stopped', exitCode: 0, signal: null, reason: 'stopped by request' })
    expect(agent.status).toBe('stopped')
  })

  it('stop: SIGKILL after the grace when SIGTERM is ignored, grandchildren included', async () => {
    const rt = freshRuntime()
    const pids = join(scratch, 'pids')
    const script = `trap '' TERM; sh -c 'trap "" TERM; while :; do sleep 0.05; done' & echo $! > ${pids}; while :; do sleep 0.05; done`
    const agent = rt.startAgent({ command: 'sh', args: ['-c', script] })
    await until(() => existsSync(pids) && readFileSync(pids, 'utf8').endsWith('\n'))
    const grandchild = Number(readFileSync(pids, 'utf8').trim())
    const leader = agent.pid!
    expect(gone(grandchild) || gone(leader)).toBe(false)
    const started = Date.now()
    const info = await agent.stop({ graceMs: 400 })
    const took = Date.now() - started
    expect(took).toBeGreaterThanOrEqual(390)
    expect(took).toBeLessThan(3000)
    expect(info).toMatchObject({ status: 'stopped', signal: 'SIGKILL', exitCode: null })
    expect(gone(leader)).toBe(true)
    expect(gone(grandchild)).toBe(true)
    await until(() => events.length >= 2)
    expect(events.map((e) => e.action)).toEqual(['started', 'stopped'])
    expect(events[1]).toMatchObject({ signal: 'SIGKILL', reason: 'stopped by request' })
  })

  it('crash: the restart policy is honoured and counted', async () => {
    const rt = freshRuntime()
    const agent = rt.startAgent({ command: 'sh', args: ['-c', 'exit 5'], restart: { maxRestarts: 2, backoffMs: 50 } })
    const info = await agent.wait()
    expect(info).toMatchObject({ status: 'crashed', exitCode: 5, restarts: 2, reason: 'exited with code 5; not restarted: maxRestarts (2) reached' })
    await until(() => events.length >= 6)
    expect(events.map((e) => e.action)).toEqual(['started', 'crashed', 'restarted', 'crashed', 'restarted', 'crashed'])
    expect(events[1]!.reason).toBe('exited with code 5; restarting in 50 ms (restart 1 of 2)')
  })

  it("budget exhaustion with 'stop' ends the agent and records why", async () => {
    const rt = freshRuntime({ statePath: join(scratch, 'state.db') })
    // Each call first reserves its worst case (16384 output tokens ≈ $0.0099), then settles at $0.00075.
    const agent = rt.startAgent({ command: 'python3', args: ['-c', PY_AGENT], env: { CALLS: '0' }, budgetUsd: 0.012, onBudgetExhausted: 'stop', graceMs: 2000 })
    const info = await agent.wait()
    expect(info.status).toBe('stopped')
    // One refused call is not exhaustion; three in a row (nothing else holding budget) are.
    expect(info.reason).toMatch(/^budget exhausted: \$0\.\d{6} spent of \$0\.012000; 3 calls in a row were refused: each could cost more than the \$0\.\d{6} left \(onBudgetExhausted: 'stop'\)/)
    const m = agent.metrics()
    expect(m.budgetExhausted).toBe(true)
    expect(m.blocked).toBeGreaterThanOrEqual(3)
    expect(m.spentUsd).toBeCloseTo(m.completed * COST_PER_CALL, 9)
    await until(() => events.some((e) => e.action === 'stopped'))
    expect(events.find((e) => e.action === 'stopped')!.reason).toBe(info.reason)
    expect(existsSync(join(scratch, 'state.db'))).toBe(true)
  })

  it("a logger gets the agents' routers' log lines (they went nowhere), redacted", async () => {
    const lines: string[] = []
    runtime = new AgentRuntime({ providerKey: KEY, providerBaseUrl: up.url, logLevel: 'debug', logger: (l) => lines.push(l) })
    up.reset()
    const agent = runtime.startAgent({ command: 'python3', args: ['-c', PY_AGENT], env: { CALLS: '1' } })
    await agent.wait()
    // The agent's router stops with it and says so.
    await until(() => lines.some((l) => l.includes('router stopped')))
    expect(lines.join('\n')).not.toContain(KEY)
  })

  it('a fixed id: one running agent has it; once it ended the next start takes it over with its spent', async () => {
    const rt = freshRuntime({ statePath: join(scratch, 'fixed-id.db') })
    const first = rt.startAgent({ id: 'writer', command: 'python3', args: ['-c', PY_AGENT], env: { CALLS: '2' } })
    expect(first.id).toBe('writer')
    expect(() => rt.startAgent({ id: 'writer', command: 'sleep', args: ['5'] })).toThrow(expect.objectContaining({ code: 'AGENT_ID_IN_USE' }))
    await first.wait()
    expect(first.metrics().spentUsd).toBeCloseTo(2 * COST_PER_CALL, 9)
    const second = rt.startAgent({ id: 'writer', command: 'python3', args: ['-c', PY_AGENT], env: { CALLS: '1' } })
    await second.wait()
    expect(second.metrics().spentUsd).toBeCloseTo(3 * COST_PER_CALL, 9)
    expect(rt.list().map((a) => a.id)).toEqual(['writer'])
    expect(() => rt.startAgent({ id: '../x', command: 'sleep', args: ['1'] })).toThrow(/invalid option id: must be 1 to 64/)
  })

  it.skipIf(process.platform !== 'linux')('unref() lets the host exit while an agent runs, and the agent does not outlive it', async () => {
    const pidFile = join(scratch, 'unref-agent.pid')
    const host = `
import { writeFileSync } from 'node:fs'
import { AgentRuntime } from ${JSON.stringify(join(ROOT, 'dist', 'index.js'))}
const rt = new AgentRuntime({ providerKey: ${JSON.stringify(KEY)}, providerBaseUrl: ${JSON.stringify(up.url)} })
const agent = rt.startAgent({ command: 'sleep', args: ['30'] })
writeFileSync(${JSON.stringify(pidFile)}, String(agent.pid))
rt.unref()
`
    const started = Date.now()
    const code = await new Promise<number | null>((resolve) => {
      const p = spawn(process.execPath, ['--input-type=module', '-e', host], { stdio: 'ignore' })
      p.on('close', resolve)
    })
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
    const pid = Number(readFileSync(pidFile, 'utf8'))
    expect(pid).toBeGreaterThan(0)
    // The agent's router died with its host: the agent is sent SIGTERM rather than left orphaned.
    await until(() => gone(pid))
  })

  it('errors carry codes and name the fix', async () => {
    const rt = freshRuntime()
    expect(() => rt.startAgent({ command: 'iron-cage-no-such-program' })).toThrow(/not found: check that it is installed and on PATH/)
    const thrown = (() => {
      try {
        rt.startAgent({ command: 'sh', onBudgetExhausted: 'pause' as 'stop' })
      } catch (err) {
        return err
      }
      return undefined
    })()
    expect(thrown).toBeInstanceOf(IronCageError)
    expect((thrown as IronCageError).code).toBe('INVALID_OPTIONS')
    expect((thrown as Error).message).toMatch(/onBudgetExhausted/)
    await expect(rt.stopAgent('agt_missing')).rejects.toMatchObject({ code: 'AGENT_NOT_FOUND' })
    expect(() => new AgentRuntime({ providerKey: KEY, budgetUsd: 1 } as never)).toThrow(/pass budgetUsd to startAgent/)
    // An empty statePath used to mean "in memory" without a word.
    expect(() => new AgentRuntime({ providerKey: KEY, statePath: '' })).toThrow(/invalid option statePath: is empty: .* leave statePath out/)
    // NaN would reach the native side as null, i.e. "no budget".
    expect(() => rt.startAgent({ command: 'true', budgetUsd: NaN })).toThrow(/invalid option budgetUsd: expected a finite number, got NaN/)
    expect(() => rt.startAgent({ command: 'true', budgetUsd: Infinity })).toThrow(/invalid option budgetUsd: expected a finite number, got Infinity/)
    await rt.shutdown()
    expect(() => rt.startAgent({ command: 'true' })).toThrow(/create a new AgentRuntime/)
    // Refused from the call to shutdown() on, not once its native part has run: an agent started
    // in the same tick outlived the shutdown.
    const other = new AgentRuntime({ providerKey: KEY, providerBaseUrl: up.url })
    const stopping = other.shutdown()
    expect(() => other.startAgent({ command: 'sleep', args: ['30'] })).toThrow(expect.objectContaining({ code: 'RUNTIME_SHUT_DOWN' }))
    await stopping
    expect(other.list()).toEqual([])
    // A state file the runtime cannot use is an option error, as for a router.
    const notSqlite = join(mkdtempSync(join(tmpdir(), 'ic-rt-')), 'state.db')
    writeFileSync(notSqlite, 'not a database, just text '.repeat(100))
    expect(() => new AgentRuntime({ providerKey: KEY, statePath: notSqlite })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  it('shutdown() resolves once every agent has ended in JS too: wait() settled, exited event sent', async () => {
    for (let round = 0; round < 5; round++) {
      const rt = new AgentRuntime({ providerKey: KEY, providerBaseUrl: up.url })
      const agents = [0, 1, 2].map(() => rt.startAgent({ command: 'sleep', args: ['30'], graceMs: 200 }))
      let settled = false
      void Promise.all(agents.map((a) => a.wait())).then(() => (settled = true))
      await rt.shutdown()
      expect(settled, `round ${round}`).toBe(true)
    }
  })
})
