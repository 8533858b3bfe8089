#!/usr/bin/env node
// The `iron-cage` command: run an agent under a budget (`run`), run a router for other shells (`serve`),
// and the offline demo (`demo`). Argument parsing uses node:util parseArgs only.
import os from 'node:os'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { AgentRuntime, type Agent, type AgentInfo } from './agent-runtime.js'
import { IronCageError } from './errors.js'
import type { LlmRouterOptions } from './options.js'
import { native } from './native.js'
import { LlmRouter, type RouterStats } from './router.js'
import { HELP } from './cli-help.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** A usage error; its message never shows a key or token (see `redact`). */
class UsageError extends Error {
  constructor(message: string) {
    super(redact(message))
  }
}

/** The key and token this run was given (flags or environment), to keep out of messages. */
function givenSecrets(): string[] {
  const out = [process.env.IRON_CAGE_PROVIDER_KEY, process.env.IRON_CAGE_SERVER_TOKEN]
  const argv = process.argv
  for (let i = 0; i < argv.length; i++) {
    for (const flag of ['--provider-key', '--token']) {
      if (argv[i] === flag) out.push(argv[i + 1])
      else if (argv[i]!.startsWith(`${flag}=`)) out.push(argv[i]!.slice(flag.length + 1))
    }
  }
  return out.filter((s): s is string => typeof s === 'string' && s.trim().length >= 4)
}

/** Key-shaped words: provider keys (sk-…, sk-ant-…, AIza…, xai-…, gsk_…) and Iron Cage tokens (ic_…). */
const KEY_SHAPED = /\b(?:sk-|sk_|ic_|gsk_|xai-|AIza)[A-Za-z0-9_-]{8,}/g

/** `text` without the given key and token, nor anything shaped like a key. */
function redact(text: string): string {
  let out = text
  for (const secret of givenSecrets()) out = out.split(secret).join('[redacted]')
  return out.replace(KEY_SHAPED, '[redacted]')
}

/** API option names in a message from the runtime, as the CLI's flags. */
function cliTerms(text: string): string {
  return redact(text)
    .replace(/\(onBudgetExhausted: 'stop'\)/g, '(--on-budget stop)')
    .replace(/invalid option (budgetUsd|graceMs|providerBaseUrl|providerKey|apiKey|serverUrl|statePath)\b/g, 'invalid $1')
    .replace(/\bbudgetUsd\b/g, '--budget')
    .replace(/\bgraceMs\b/g, '--grace-ms')
    .replace(/\bproviderBaseUrl\b/g, '--provider-base-url')
    .replace(/\bproviderKey\b/g, '--provider-key')
    .replace(/\bapiKey\b/g, '--token')
    .replace(/\bserverUrl\b/g, '--server')
    .replace(/\bstatePath\b/g, '--state')
    .replace(/invalid option id:/g, 'invalid --id:')
    .replace(/\bagentId\b/g, '--id')
}

/** Runs a command, its runtime errors worded with the CLI's flags. */
async function inCliTerms(run: () => Promise<number>): Promise<number> {
  try {
    return await run()
  } catch (err) {
    if (err instanceof IronCageError) throw new IronCageError(err.code, cliTerms(err.message))
    throw err
  }
}


const KEY_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  'provider-key': { type: 'string' },
  'provider-base-url': { type: 'string' },
  budget: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options']

const RUN_OPTIONS = {
  ...KEY_OPTIONS,
  state: { type: 'string' },
  id: { type: 'string' },
  name: { type: 'string' },
  'on-budget': { type: 'string' },
  restarts: { type: 'string' },
  'backoff-ms': { type: 'string' },
  'grace-ms': { type: 'string' },
  interactive: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options']

type Values = Partial<Record<keyof typeof RUN_OPTIONS, string | boolean>>

/**
 * iron-cage's own arguments and the rest: options end at the first positional (the command) or
 * at '--'. Everything from the command on is the command's, options with iron-cage's names
 * included (`run --budget 1 python3 agent.py --budget 100`: the second --budget is the agent's).
 */
function splitArgs(argv: string[], options: NonNullable<ParseArgsConfig['options']>): { own: string[]; rest: string[] } {
  // The command's arguments are passed on exactly as given: only iron-cage's own are rewritten.
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true })
  const end = tokens.find((t) => t.kind === 'positional' || t.kind === 'option-terminator')
  const given = end ? argv.slice(0, end.index) : argv
  const rest = end ? argv.slice(end.kind === 'positional' ? end.index : end.index + 1) : []
  // A negative number after an option that takes a value is that value (`--budget -1`), so that
  // its check can say what is wrong; parseArgs would take it for an option.
  const own: string[] = []
  for (let i = 0; i < given.length; i++) {
    const a = given[i]!
    const name = a.startsWith('--') ? a.slice(2) : undefined
    const next = given[i + 1]
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      own.push(`${a}=${next}`)
      i += 1
    } else {
      own.push(a)
    }
  }
  return { own, rest }
}

function parse(cmd: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>): { values: Values; rest: string[] } {
  const { own, rest } = splitArgs(argv, options)
  try {
    const { values } = parseArgs({ args: own, options, allowPositionals: false, strict: true })
    return { values: values as Values, rest }
  } catch (err) {
    const e = err as Error & { code?: string }
    // Node's own text for an unknown option suggests quoting it after '--', which is not what helps here.
    const unknown = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(e.message)?.[1] : undefined
    const msg = unknown ? `unknown option '${unknown}'` : e.message
    const hint = cmd === 'run' ? ` (the agent's own options go after its command: iron-cage run [options] [--] <command> [args…])` : ''
    throw new UsageError(`${msg}${hint}`)
  }
}

function num(values: Values, name: keyof Values, what: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n)) {
    throw new UsageError(`--${name} expects ${what}, got '${String(raw)}'`)
  }
  if (n < 0) throw new UsageError(`--${name} must be 0 or more, got '${raw}'`)
  if (n > max) throw new UsageError(`--${name} must be at most ${max}, got '${raw}'`)
  return n
}

function routerOptions(values: Values): LlmRouterOptions {
  const token = (values.token as string | undefined) ?? process.env.IRON_CAGE_SERVER_TOKEN
  const providerKey = (values['provider-key'] as string | undefined) ?? process.env.IRON_CAGE_PROVIDER_KEY
  const server = values.server as string | undefined
  if (server && values['provider-key']) throw new UsageError('give either --server (with --token) or --provider-key, not both')
  if (server) {
    if (!token) throw new UsageError('--server needs --token ic_… (your Iron Cage token), or set IRON_CAGE_SERVER_TOKEN')
    if (values['provider-base-url']) throw new UsageError('--provider-base-url goes with --provider-key; with --server the key server gives the base URL')
    return { serverUrl: server, apiKey: token }
  }
  if (providerKey) {
    const base = values['provider-base-url'] as string | undefined
    return base ? { providerKey, providerBaseUrl: base } : { providerKey }
  }
  throw new UsageError('no key source: pass --provider-key KEY (or set IRON_CAGE_PROVIDER_KEY), or --server URL --token ic_…; try the offline demo: iron-cage demo')
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

function usd(n: number): string {
  if (n >= 1 || Math.abs(n * 100 - Math.round(n * 100)) < 1e-9) return `$${n.toFixed(2)}`
  if (n >= 0.01) return `$${n.toFixed(4)}`
  return `$${n.toFixed(6)}`
}

function secs(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n')
}

function outcome(info: AgentInfo): string {
  if (info.status === 'exited') return 'exited with code 0'
  const how = info.signal ? `ended by ${info.signal}` : `exited with code ${info.exitCode}`
  const why = info.reason && !info.reason.startsWith(how) && !info.reason.startsWith('killed by') ? ` (${cliTerms(info.reason)})` : ''
  return info.status === 'stopped' ? `was stopped: ${how}${why}` : `crashed: ${how}${why}`
}

/** "1 call" / "2 calls". */
function calls(n: number): string {
  return `${n} call${n === 1 ? '' : 's'}`
}

/** A wait in words: 90s, 15 min. */
function upTo(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : secs(ms)
}

/** The summary line for calls iron-cage stopped waiting for. */
function unsettledText(info: AgentInfo, state: string | undefined): string | undefined {
  const u = info.unsettled
  if (!u) return undefined
  const held = u.heldMicros > 0 ? `up to ${usd(u.heldMicros / 1e6)} held for ${u.calls === 1 ? 'it' : 'them'} is charged in spent` : 'their cost is unknown (nothing is held without --budget)'
  const file = u.chargedInStateFile ? `; charged at ${u.calls === 1 ? 'its hold' : 'their holds'} in ${state}` : ''
  return `  not waited for: ${calls(u.calls)} still at the provider (the provider bills ${u.calls === 1 ? 'it' : 'them'}); ${held}${file}`
}

function summaryText(title: string, stats: RouterStats, budget: number | null): string {
  const rows: string[][] = [['model', 'calls', 'input', 'output', 'cached', 'cost']]
  for (const [model, m] of Object.entries(stats.byModel)) {
    rows.push([model, String(m.requests), String(m.inputTokens), String(m.outputTokens), String(m.cacheReadTokens), usd(m.costUsd)])
  }
  const calls = Object.values(stats.byModel).reduce((a, m) => a + m.requests, 0)
  rows.push(['total', String(calls), String(stats.inputTokens), String(stats.outputTokens), String(stats.cacheReadTokens), usd(stats.costUsd)])
  const lines = [title, table(rows)]
  if (budget !== null) lines.push(`  budget: ${usd(stats.costUsd)} spent of ${usd(budget)}`)
  const reasons = Object.entries(stats.blockedByReason).map(([r, n]) => `${r} ${n}`).join(', ')
  lines.push(`  blocked: ${stats.blocked}${reasons ? ` (${reasons})` : ''}`)
  return lines.join('\n')
}

/** One status line pinned to the terminal's last row (a scroll region keeps the agent's output above it). */
class LiveLine {
  #rows = 0
  #active = false
  constructor(private readonly out: NodeJS.WriteStream) {}

  start(): void {
    this.#rows = this.out.rows || 24
    // Make room for the line, then confine scrolling to the rows above it.
    this.out.write(`\n\x1b[1A\x1b7\x1b[1;${this.#rows - 1}r\x1b8`)
    this.#active = true
    this.out.on('resize', this.#onResize)
  }

  draw(text: string): void {
    if (!this.#active) return
    const cols = this.out.columns || 80
    this.out.write(`\x1b7\x1b[${this.#rows};1H\x1b[2K${text.slice(0, cols - 1)}\x1b8`)
  }

  stop(): void {
    if (!this.#active) return
    this.#active = false
    this.out.off('resize', this.#onResize)
    this.out.write(`\x1b7\x1b[r\x1b[${this.#rows};1H\x1b[2K\x1b8`)
  }

  #onResize = (): void => {
    this.stop()
    this.start()
  }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

interface RunPlan {
  router: LlmRouterOptions
  budget?: number
  command: string[]
  json: boolean
  state?: string
  id?: string
  name?: string
  onBudget: 'keep-running' | 'stop'
  restarts?: number
  backoffMs?: number
  graceMs: number
  interactive?: boolean
}

/**
 * With a key server, ask it once before the agent starts: an agent whose every call fails with 502
 * because the server is down or refuses the token should not be the first sign of it. A warning, not
 * a refusal: the server may come up while the agent runs (keys are fetched on demand).
 */
async function warnIfNoKey(options: LlmRouterOptions): Promise<void> {
  const probe = await LlmRouter.create(options)
  try {
    if (probe.providerError) {
      process.stderr.write(`iron-cage: warning: no provider key yet (${cliTerms(probe.providerError)}); the agent starts anyway and its calls fail until the key server answers\n`)
    }
  } finally {
    await probe.stop()
  }
}

/** The signal iron-cage ends by, after its summary (as `timeout` and `env` do): a calling shell
 * stops its script or loop only when its child died by SIGINT. */
let endBySignal: NodeJS.Signals | undefined

/** The signals `run` passes on to the agent (Ctrl-C, kill, hangup, Ctrl-\\), then ends by the same. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const

async function runAgent(plan: RunPlan): Promise<number> {
  const [command, ...args] = plan.command
  if (!command) throw new UsageError("no command to run: iron-cage run [options] -- <command> [args…], e.g. -- python3 agent.py")
  if (plan.router.serverUrl) await warnIfNoKey(plan.router)
  const runtime = new AgentRuntime({ ...plan.router, ...(plan.state ? { statePath: plan.state } : {}) })
  // Handlers go in before the child exists: a signal in between must not kill us and orphan it.
  let agent: Agent | undefined
  let interrupts = 0
  let first: NodeJS.Signals = 'SIGINT'
  const stopAgent = () => {
    // The signal iron-cage got goes on to the agent first (SIGINT: Python's KeyboardInterrupt, its
    // cleanup runs); the next one kills at once and ends any wait for calls at the provider.
    const options = interrupts === 1 ? { graceMs: plan.graceMs, signal: first as 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGQUIT' } : { graceMs: 0 }
    void agent?.stop(options).catch(() => {})
  }
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts += 1
    if (interrupts === 1) first = sig
    const settling = agent?.info().settling
    if (settling) {
      process.stderr.write(`\niron-cage: ${sig}: not waiting for the ${calls(settling.calls)} still at the provider\n`)
    } else if (interrupts === 1 && !plan.json) {
      const then = sig === 'SIGTERM' ? `SIGKILL in ${secs(plan.graceMs)}` : `SIGTERM in ${secs(plan.graceMs)}, SIGKILL in ${secs(2 * plan.graceMs)}`
      process.stderr.write(`\niron-cage: ${sig}: stopping ${agent?.name ?? command} (${sig}, ${then}; Ctrl-C again to kill now)\n`)
    }
    stopAgent()
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  // Calls the agent left at the provider are waited for (so they are charged): never silently.
  runtime.on('agent', (e) => {
    if (e.action !== 'settling' || e.agentId !== agent?.id) return
    const s = agent.info().settling
    const n = s?.calls ?? 0
    if (n === 0) return
    const more = interrupts > 0 ? 'Ctrl-C again' : 'Ctrl-C'
    process.stderr.write(`iron-cage: ${agent.name} ended with ${calls(n)} still at the provider: waiting up to ${upTo((s?.untilMs ?? Date.now()) - Date.now())} for ${n === 1 ? 'it' : 'them'} to settle, so that ${n === 1 ? 'it is' : 'they are'} charged (${more} to stop waiting)\n`)
  })
  // A terminal that hung up (EIO, the window closed) or a reader that left (EPIPE, `| head`) must
  // not end iron-cage while it stops the agent and settles its calls.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'EIO') throw err
    })
  }
  try {
    agent = runtime.startAgent({
      command,
      args,
      id: plan.id,
      name: plan.name,
      budgetUsd: plan.budget,
      onBudgetExhausted: plan.onBudget,
      graceMs: plan.graceMs,
      // By default iron-cage stays the terminal's foreground job (it gets Ctrl-C and stops the agent,
      // never restarting it); --interactive hands the terminal to the agent, which reads it.
      stdin: process.stdin.isTTY ? (plan.interactive ? 'terminal' : 'ignore') : 'inherit',
      ...(plan.restarts !== undefined ? { restart: { maxRestarts: plan.restarts, backoffMs: plan.backoffMs ?? 1000 } } : {}),
    })
  } catch (err) {
    for (const s of STOP_SIGNALS) process.off(s, onSignal)
    await runtime.shutdown()
    throw err
  }
  if (interrupts > 0) stopAgent()
  // From the spawn (the runtime's clock): a quick agent may have ended before startAgent returned.
  const started = agent.info().startedAtMs
  const live = !plan.json && process.stderr.isTTY ? new LiveLine(process.stderr) : undefined
  const budgetText = plan.budget !== undefined ? ` of ${usd(plan.budget)}` : ''
  const running = agent
  const draw = () => {
    const m = running.metrics()
    const now = running.info()
    const status = now.settling ? `waiting for ${calls(now.settling.calls)} at the provider` : now.status
    live?.draw(
      `iron-cage ▸ ${running.name} ${status} · ${usd(m.spentUsd)}${budgetText} · ${m.requests} requests · ${m.blocked} blocked · last ${m.lastModel ?? '-'} · ${secs(Math.max(0, (now.endedAtMs ?? Date.now()) - started))}`,
    )
  }
  live?.start()
  draw()
  const ticker = live ? setInterval(draw, 200) : undefined

  const info = await agent.wait()
  if (ticker) clearInterval(ticker)
  draw()
  live?.stop()
  for (const s of STOP_SIGNALS) process.off(s, onSignal)
  const stats = agent.stats()
  await runtime.shutdown()
  const code = exitCodeOf(info)
  if (interrupts > 0 && (first === 'SIGINT' || first === 'SIGQUIT')) endBySignal = first
  else if (info.signal === 'SIGINT' || info.signal === 'SIGQUIT') endBySignal = info.signal
  // The agent's run time: a wait for its calls at the provider afterwards is not part of it.
  const durationMs = Math.max(0, (info.endedAtMs ?? Date.now()) - started)
  if (plan.json) {
    const { spentUsd, budgetUsd, budgetExhausted } = agent.metrics()
    // On a line of its own even when the agent's output did not end with one.
    process.stdout.write('\n' + JSON.stringify({ agent: info, exitCode: code, durationMs, spentUsd, budgetUsd, budgetExhausted, stats }) + '\n')
  } else {
    const title = `iron-cage: ${info.name} ${outcome(info)} after ${secs(durationMs)}${info.restarts ? `, ${info.restarts} restarts` : ''}`
    const unsettled = unsettledText(info, plan.state)
    process.stderr.write(summaryText(title, stats, plan.budget ?? null) + (unsettled ? `\n${unsettled}` : '') + (plan.state ? `\n  state: ${plan.state}` : '') + '\n')
  }
  return code
}

/** The child's exit code, or 128 + signal number as shells report it. */
function exitCodeOf(info: AgentInfo): number {
  if (info.exitCode !== null) return info.exitCode
  if (!info.signal) return 1
  // Signal numbers are the platform's (SIGUSR1 is 10 on Linux, 30 on macOS); "SIG40" names a number.
  const n = (os.constants.signals as Record<string, number | undefined>)[info.signal] ?? Number(/^SIG(\d+)$/.exec(info.signal)?.[1])
  return n > 0 ? 128 + n : 1
}

function runPlan(argv: string[]): RunPlan {
  const { values, rest } = parse('run', argv, RUN_OPTIONS)
  const onBudget = (values['on-budget'] as string | undefined) ?? 'keep-running'
  if (onBudget !== 'keep-running' && onBudget !== 'stop') throw new UsageError(`--on-budget expects keep-running or stop, got '${onBudget}'`)
  const restarts = num(values, 'restarts', 'a whole number of restarts', 1_000_000)
  if (restarts !== undefined && !Number.isInteger(restarts)) throw new UsageError(`--restarts expects a whole number, got '${String(values.restarts)}'`)
  if (values.id !== undefined && values.state === undefined) throw new UsageError('--id needs --state PATH: the state file is what keeps the agent\'s spent from one run to the next')
  return {
    router: routerOptions(values),
    budget: num(values, 'budget', 'an amount in USD such as 0.50'),
    command: rest,
    json: values.json === true,
    state: values.state as string | undefined,
    id: values.id as string | undefined,
    name: values.name as string | undefined,
    onBudget,
    restarts,
    backoffMs: num(values, 'backoff-ms', 'milliseconds', 3_600_000),
    graceMs: num(values, 'grace-ms', 'milliseconds', 3_600_000) ?? 5000,
    interactive: values.interactive === true,
  }
}

/**
 * `serve`'s lines for the shell's proxy exclusions, as `run` sets them for its agent: each list is
 * its own value (else the other case's) with the router's hosts added, so an HTTP proxy never gets
 * the calls. The first line fills an empty list from the other (left to right: `NO_PROXY` sees the
 * filled `no_proxy` only when it was empty itself).
 */
const PROXY_EXPORTS = [
  'export no_proxy="${no_proxy:-$NO_PROXY}" NO_PROXY="${NO_PROXY:-$no_proxy}"',
  'export no_proxy="${no_proxy:+$no_proxy,}127.0.0.1,localhost" NO_PROXY="${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost"',
]

async function serve(argv: string[]): Promise<number> {
  const { values, rest } = parse('serve', argv, KEY_OPTIONS)
  if (rest.length) throw new UsageError(`serve takes no command (got '${rest.join(' ')}'); to run a program use: iron-cage run [options] -- ${rest.join(' ')}`)
  const budget = num(values, 'budget', 'an amount in USD such as 5')
  // The printed lines go to agents: they get a token minted for this router, never the Iron Cage
  // token (which could fetch the real key from the key server and skip the router).
  const router = await LlmRouter.create({ ...routerOptions(values), ...(budget !== undefined ? { budgetUsd: budget } : {}), mintClientToken: true })
  // Listening before anything is printed: a script that reads the lines and sends SIGINT at once
  // must get the summary, not a process killed by the signal.
  const stopped = new Promise<void>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => resolve())
  })
  const env = router.env()
  if (values.json) {
    process.stdout.write(JSON.stringify({ baseUrl: router.baseUrl, anthropicBaseUrl: router.anthropicBaseUrl, apiKey: router.apiKey, port: router.port, provider: router.provider, env }) + '\n')
  } else {
    const lines = [
      `iron-cage router on 127.0.0.1:${router.port} (provider: ${router.provider}${router.providerError ? `; ${cliTerms(router.providerError)}` : ''})`,
      `  OpenAI base URL:    ${router.baseUrl}`,
      `  Anthropic base URL: ${router.anthropicBaseUrl}`,
      '',
      'Paste into the shell where your agent runs:',
      ...Object.entries(env)
        .filter(([k]) => k !== 'NO_PROXY' && k !== 'no_proxy')
        .map(([k, v]) => `export ${k}=${v}`),
      ...PROXY_EXPORTS,
      '',
      'Ctrl-C to stop.',
    ]
    process.stdout.write(lines.join('\n') + '\n')
  }
  const started = Date.now()
  await stopped
  const stats = router.stats()
  await router.stop()
  if (values.json) process.stdout.write(JSON.stringify({ stats }) + '\n')
  else process.stderr.write('\n' + summaryText(`iron-cage: router stopped after ${secs(Date.now() - started)}`, stats, budget ?? null) + '\n')
  return 0
}

async function demo(argv: string[]): Promise<number> {
  if (argv.length) throw new UsageError(`demo takes no options (got '${argv.join(' ')}')`)
  // The addon first: without it the banner below would announce a run that cannot start.
  native()
  const fakes = join(ROOT, 'examples', 'fake-upstream.mjs')
  const agentPath = join(ROOT, 'examples', 'demo-agent.mjs')
  if (!existsSync(fakes) || !existsSync(agentPath)) {
    throw new UsageError(`the demo files are missing under ${join(ROOT, 'examples')}; reinstall iron-cage (the package ships examples/)`)
  }
  const up = (await import(pathToFileURL(fakes).href)) as typeof import('../examples/fake-upstream.mjs')
  const IC = 'ic_demo_token_local_only'
  const provider = await up.startFakeProvider({ expectedKey: 'sk-demo-provider-key', text: 'Hello from the offline demo provider, relayed by Iron Cage.' })
  provider.behaviour.chunkDelayMs = 60
  const keys = await up.startFakeKeyServer({ icToken: IC, key: 'sk-demo-provider-key', provider: 'openai', baseUrl: provider.url })
  process.stderr.write(
    [
      'iron-cage demo (offline)',
      `  fake provider:   ${provider.url}   fake key server: ${keys.url}`,
      `  running: IRON_CAGE_SERVER_TOKEN=${IC} iron-cage run --server ${keys.url} --budget 0.05 -- node ${agentPath}`,
      '',
    ].join('\n') + '\n',
  )
  let code: number
  try {
    code = await runAgent({
      router: { serverUrl: keys.url, apiKey: IC },
      budget: 0.05,
      command: [process.execPath, agentPath],
      json: false,
      name: 'demo-agent',
      onBudget: 'keep-running',
      graceMs: 2000,
    })
  } finally {
    await Promise.all([provider.close(), keys.close()])
  }
  process.stderr.write('\nYour own agent: IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage run --budget 1 -- python3 agent.py\n')
  return code
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP.main + '\n')
    return cmd ? 0 : 2
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write(version() + '\n')
    return 0
  }
  if (!isCommand(cmd)) throw new UsageError(`unknown command '${cmd}'; use run, serve or demo (iron-cage --help)`)
  if (ownArgs(cmd, rest).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(HELP[cmd] + '\n')
    return 0
  }
  if (cmd === 'run') return inCliTerms(() => runAgent(runPlan(rest)))
  if (cmd === 'serve') return inCliTerms(() => serve(rest))
  return demo(rest)
}

/** The version in the package.json next to dist/ (the one npm installed). */
function version(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
}

/** iron-cage's own arguments to `cmd` (for run, those before the agent's command). */
function ownArgs(cmd: 'run' | 'serve' | 'demo', rest: string[]): string[] {
  if (cmd === 'demo') return rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'))
  return splitArgs(rest, cmd === 'run' ? RUN_OPTIONS : KEY_OPTIONS).own
}

/** A command name (own keys only: `constructor` or `hasOwnProperty` are not commands). */
function isCommand(cmd: string): cmd is 'run' | 'serve' | 'demo' {
  return cmd === 'run' || cmd === 'serve' || cmd === 'demo'
}

main(process.argv.slice(2)).then(
  (code) => {
    if (!endBySignal) process.exit(code)
    process.removeAllListeners(endBySignal)
    process.kill(process.pid, endBySignal)
    // Still here: the signal is ignored (a non-interactive shell's `&` ignores SIGINT).
    setTimeout(() => process.exit(code), 200)
  },
  (err: unknown) => {
    const cmd = process.argv[2] ?? ''
    if (err instanceof UsageError) {
      process.stderr.write(`iron-cage${isCommand(cmd) ? ` ${cmd}` : ''}: ${err.message}\n(see: iron-cage ${isCommand(cmd) ? `${cmd} ` : ''}--help)\n`)
      process.exit(2)
    }
    if (err instanceof IronCageError) {
      // Most messages already start with "iron-cage …".
      process.stderr.write(`${/^iron-cage\b/.test(err.message) ? '' : 'iron-cage: '}${err.message} [${err.code}]\n`)
      process.exit(err.code === 'SPAWN_FAILED' ? 127 : 2)
    }
    process.stderr.write(`iron-cage: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  },
)
