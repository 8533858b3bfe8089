// Embedding safety: the addon in worker threads and the main thread at once, and how a router affects process exit.
// Each case runs the built package (dist/) in a child process, so a crash, a hang or a signal is seen from outside.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))

interface Outcome {
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  lines: string[]
  stderr: string
}

function start(script: string, args: string[] = []): { child: ChildProcess; out: () => string[]; err: () => string } {
  const child = spawn(process.execPath, [fixture(script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  return { child, out: () => stdout.split('\n').filter((l) => l !== ''), err: () => stderr }
}

/** Run to completion, or SIGKILL after `timeoutMs` and say so. */
async function run(script: string, args: string[], timeoutMs: number): Promise<Outcome> {
  const { child, out, err } = start(script, args)
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, timeoutMs)
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return { code, signal, timedOut, lines: out(), stderr: err() }
}

describe('worker threads', () => {
  it('routers in two workers and the main thread; one worker terminated while serving; the process exits 0 by itself', async () => {
    const r = await run('worker-and-main.mjs', [], 20_000)
    expect(r.stderr).toBe('')
    expect({ code: r.code, signal: r.signal, timedOut: r.timedOut }).toEqual({ code: 0, signal: null, timedOut: false })
    expect(r.lines).toEqual(
      expect.arrayContaining([
        'worker finish: Hello from the fake provider.',
        'worker finish: stopped (events seen)',
        'worker terminate: Hello from the fake provider.',
        'main: Hello from the fake provider.',
        'worker finish exit 0',
        'worker terminate: terminated (1)',
        'main after terminate: Hello from the fake provider.',
        "terminated worker's router: closed",
      ]),
    )
    expect(r.lines.at(-1)).toBe('main: done')
  })

  it('survives the worker dance five times in a row (no intermittent crash at teardown)', async () => {
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => run('worker-and-main.mjs', [], 20_000)))
    expect(outcomes.map((o) => [o.code, o.signal, o.timedOut])).toEqual(Array(5).fill([0, null, false]))
  })
})

describe('process exit', () => {
  it('a script that forgets stop() but calls unref() exits by itself', async () => {
    const r = await run('forgets-stop.mjs', ['unref'], 10_000)
    expect(r.stderr).toBe('')
    expect({ code: r.code, signal: r.signal, timedOut: r.timedOut }).toEqual({ code: 0, signal: null, timedOut: false })
    expect(r.lines).toEqual(['answer: Hello from the fake provider.', 'running: true'])
  })

  it('a script that forgets stop() without unref() keeps running, like a listening server', async () => {
    const { child, out } = start('forgets-stop.mjs')
    const exited = once(child, 'exit')
    const deadline = Date.now() + 10_000
    while (!out().includes('running: true') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    expect(out()).toEqual(['answer: Hello from the fake provider.', 'running: true'])
    await new Promise((r) => setTimeout(r, 1_000))
    expect({ code: child.exitCode, signal: child.signalCode }).toEqual({ code: null, signal: null })
    child.kill('SIGTERM')
    const [, signal] = (await exited) as [number | null, NodeJS.Signals | null]
    expect(signal).toBe('SIGTERM')
  })
})
