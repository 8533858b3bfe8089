// Typed entry point to the fake OpenAI/Anthropic provider; the one implementation is examples/fake-upstream.mjs.
export { startFakeProvider, promptChars } from '../../examples/fake-upstream.mjs';
export type {
  FakeProvider,
  FakeProviderOptions,
  Fault,
  ProviderBehaviour,
  RecordedRequest,
  UsageFigures,
} from '../../examples/fake-upstream.mjs';
