// The CLI's help texts, one per command (`iron-cage --help`, `iron-cage run --help`, …).

export const HELP: Record<string, string> = {
  main: `iron-cage: governance for AI agents (budgets, PII policy, reliability) through a local proxy

Usage:
  iron-cage run   [options] -- <command> [args…]   run an agent under a budget
  iron-cage serve [options]                        run a router for agents started elsewhere
  iron-cage demo                                   the offline demo (fake provider, real agent)
  iron-cage <command> --help                       options and examples
  iron-cage --version                              the installed version (also -v)

Start here:
  npx iron-cage demo`,
  run: `Usage: iron-cage run [options] [--] <command> [args…]

Runs <command> with OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY and
IRON_CAGE_* pointing at its own router (and 127.0.0.1,localhost added to NO_PROXY / no_proxy).
Its OpenAI / Anthropic SDK calls are metered and governed. Options end at <command>: everything
after it is the command's own. Exits with the command's exit code (128 + n when a signal ended it).

A SIGINT (Ctrl-C), SIGTERM, SIGHUP or SIGQUIT to iron-cage is passed on to the command's process
group; still running after --grace-ms it gets SIGTERM, then SIGKILL after another --grace-ms (after
a SIGTERM: SIGKILL after --grace-ms); a second Ctrl-C kills at once. A command stopped that way is not restarted. After a Ctrl-C, or when the
command ended by SIGINT or SIGQUIT, iron-cage prints its summary and ends by that signal too, so
that a shell script or loop running it stops as it would without iron-cage. If it ended
with calls still at the provider, iron-cage says so and waits for them (at most the provider
timeout) so they are charged; Ctrl-C stops that wait.

Key source (one of):
  --server URL --token IC         Iron Cage server and your ic_ token (env IRON_CAGE_SERVER_TOKEN)
  --provider-key KEY              a provider key used directly (env IRON_CAGE_PROVIDER_KEY)
    [--provider-base-url URL]     the provider's API base (default its public API)
  Prefer the environment variables: other users of the machine can read a command line. Neither
  variable, nor any other holding the key or token, is passed on to <command>.
Options:
  --budget USD                    budget for this run; calls that could overshoot it get HTTP 402
  --on-budget keep-running|stop   when the budget is exhausted (default keep-running): spent
                                  reached it, what is left is below the cheapest call of the model
                                  refused, or 3 calls in a row were refused (one refusal is not)
  --restarts N [--backoff-ms MS]  restart the command up to N times if it crashes
  --grace-ms MS                   time each stop signal gets before the next (default 5000)
  --interactive                   for a command that reads the terminal (input(), a chat prompt):
                                  it becomes the terminal's foreground job and gets Ctrl-C itself.
                                  Caveat: iron-cage then does not see the Ctrl-C; only an exit by
                                  SIGINT/SIGQUIT or with code 130 counts as stopped by you, any
                                  other (e.g. exit 1 on KeyboardInterrupt) as a crash, which
                                  --restarts restarts. Ctrl-Z does not suspend it (it goes on).
                                  Without --interactive its stdin at a terminal is /dev/null.
  --name NAME                     the agent's name in events and the state store
  --state PATH                    persist the agent and its calls in this SQLite file
  --id ID                         with --state: the agent's id in it, the same across runs, so its
                                  spent carries over and --budget covers every run (default: a
                                  new id per run)
  --json                          no live line; print the summary as JSON on the last stdout line
                                  (always on a line of its own)

Examples:
  IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage run --budget 0.50 -- python3 agent.py
  IRON_CAGE_SERVER_TOKEN=ic_… npx iron-cage run --server https://iron-cage.example.com --budget 2 -- node agent.mjs
  IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage run --budget 1 --on-budget stop --json -- ./my-agent
  IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage run --interactive --budget 1 -- python3 chat.py   # reads the terminal
  IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage run --budget 1 python3 chat.py --model gpt-4o   # --model is chat.py's`,
  serve: `Usage: iron-cage serve [options]

Runs a router on 127.0.0.1 until Ctrl-C and prints its base URLs and the export lines to paste into
the shell where your agent runs. Prints a summary when stopped.

Key source: --server URL --token IC | --provider-key KEY [--provider-base-url URL] (as for run)
Options:
  --budget USD      budget for everything sent through this router
  --json            print {baseUrl, anthropicBaseUrl, apiKey, port, provider, env} as one JSON line,
                    and {stats} as a second line when stopped

Examples:
  IRON_CAGE_PROVIDER_KEY="$OPENAI_API_KEY" npx iron-cage serve --budget 5
  IRON_CAGE_PROVIDER_KEY="$KEY" npx iron-cage serve --json   # one JSON line for a script that reads the URLs and token`,
  demo: `Usage: iron-cage demo

Offline: starts a fake OpenAI-compatible provider and a fake Iron Cage key server on 127.0.0.1,
then runs examples/demo-agent.mjs (an ordinary openai SDK program) under 'iron-cage run' with a
$0.05 budget: a few calls, one streamed, and one refused because it could overshoot the budget.
No network, no keys.`,
}
