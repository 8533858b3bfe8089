// Typed entry point to the fake Iron Cage key server; the one implementation is examples/fake-upstream.mjs.
export { startFakeKeyServer } from '../../examples/fake-upstream.mjs';
export type { FakeKeyServer, FakeKeyServerOptions, KeyServerBehaviour } from '../../examples/fake-upstream.mjs';
