import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { index: 'src-ts/index.ts', cli: 'src-ts/cli.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src-ts/index.ts' } },
  target: 'node20',
  platform: 'node',
  // Not tsup's import.meta shim: in CJS it builds the URL as `file:${__filename}`, which a `#`, `?` or `%`
  // in the install path breaks.
  shims: false,
  clean: true,
  sourcemap: false,
  splitting: false,
  external: ['../binding.cjs'],
  // CJS has no import.meta: `import.meta.url` becomes the path-safe URL of src-ts/cjs-shims.ts.
  // native.ts does not rely on it (it takes `__filename` when there is one).
  esbuildOptions(options, { format }) {
    if (format !== 'cjs') return
    options.inject = [...(options.inject ?? []), 'src-ts/cjs-shims.ts']
    options.define = { ...options.define, 'import.meta.url': 'importMetaUrl' }
  },
})
