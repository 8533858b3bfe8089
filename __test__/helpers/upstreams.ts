// Fake OpenAI and Anthropic providers plus their Iron Cage key servers on loopback, started once per
// test file and reset after every test.
import { afterAll, afterEach, beforeAll } from 'vitest'
import { startFakeKeyServer, type FakeKeyServer } from './fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './fake-provider.js'

export interface FakeUpstreams {
  openaiUp: FakeProvider
  anthropicUp: FakeProvider
  openaiKeys: FakeKeyServer
  anthropicKeys: FakeKeyServer
}

/** Register the hooks; the returned object's fields are set before the first test runs. */
export function useFakeUpstreams(opts: { icToken: string; openaiKey: string; anthropicKey: string }): FakeUpstreams {
  const fakes = {} as FakeUpstreams
  beforeAll(async () => {
    fakes.openaiUp = await startFakeProvider({ expectedKey: opts.openaiKey })
    fakes.anthropicUp = await startFakeProvider({ expectedKey: opts.anthropicKey })
    fakes.openaiKeys = await startFakeKeyServer({ icToken: opts.icToken, key: opts.openaiKey, provider: 'openai', baseUrl: fakes.openaiUp.url })
    fakes.anthropicKeys = await startFakeKeyServer({
      icToken: opts.icToken,
      key: opts.anthropicKey,
      provider: 'anthropic',
      baseUrl: fakes.anthropicUp.url,
    })
  })
  afterAll(async () => {
    await Promise.all([fakes.openaiUp?.close(), fakes.anthropicUp?.close(), fakes.openaiKeys?.close(), fakes.anthropicKeys?.close()])
  })
  afterEach(() => {
    fakes.openaiUp.reset()
    fakes.anthropicUp.reset()
  })
  return fakes
}
