// The demo agent: an ordinary program using the `openai` SDK. It knows nothing about Iron Cage; it reads
// OPENAI_BASE_URL and OPENAI_API_KEY like any app, which `iron-cage run` points at the agent's router.
// Without the `openai` package installed (e.g. under npx) it falls back to plain fetch, same calls.

const say = (line) => process.stdout.write(`agent ▸ ${line}\n`)

async function makeClient() {
  try {
    const { default: OpenAI } = await import('openai')
    return { kind: 'openai SDK', client: new OpenAI({ maxRetries: 0 }) }
  } catch {
    return { kind: 'fetch (openai package not installed)', client: fetchClient() }
  }
}

// The few calls this agent makes, over fetch, shaped like the SDK's answers.
function fetchClient() {
  const base = process.env.OPENAI_BASE_URL
  const key = process.env.OPENAI_API_KEY
  const create = async (body) => {
    const res = await fetch(`${base}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    if (!res.ok) {
      const err = await res.json().catch(() => ({}))
      throw Object.assign(new Error(err?.error?.message ?? `HTTP ${res.status}`), { status: res.status })
    }
    if (!body.stream) return res.json()
    return (async function* () {
      let buf = ''
      for await (const piece of res.body.pipeThrough(new TextDecoderStream())) {
        buf += piece
        let i
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const data = buf.slice(0, i).replace(/^data: /, '')
          buf = buf.slice(i + 2)
          if (data && data !== '[DONE]') yield JSON.parse(data)
        }
      }
    })()
  }
  return { chat: { completions: { create } } }
}

const { kind, client } = await makeClient()
say(`calling ${process.env.OPENAI_BASE_URL} with ${kind}`)

const first = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello to the Iron Cage demo.' }],
})
say(`gpt-4o-mini answered: ${first.choices[0].message.content}`)

const second = await client.chat.completions.create({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Summarise what a budget is in one line.' },
  ],
})
say(`gpt-4o-mini answered: ${second.choices[0].message.content}`)

process.stdout.write('agent ▸ gpt-4o streams: ')
const stream = await client.chat.completions.create({
  model: 'gpt-4o',
  stream: true,
  max_tokens: 200,
  messages: [{ role: 'user', content: 'Stream a short greeting.' }],
})
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.delta?.content ?? '')
process.stdout.write('\n')

try {
  // Asking for 16k output tokens of gpt-4o could cost more than the budget left: the router refuses it.
  await client.chat.completions.create({
    model: 'gpt-4o',
    max_tokens: 16384,
    messages: [{ role: 'user', content: 'Write a very long essay.' }],
  })
  say('the long essay went through (budget large enough)')
} catch (err) {
  say(`refused by Iron Cage (HTTP ${err.status}): ${err.message}`)
}
