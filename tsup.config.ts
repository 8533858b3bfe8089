import { defineConfig } from 'tsup'

// Two builds, run in parallel: the library in ESM and CJS (with its types), and the CLI in ESM only
// (package.json's bin runs dist/cli.js; nothing requires a CJS CLI). Each cleans only its own files.
const common = {
  target: 'node20',
  platform: 'node',
  // Not tsup's import.meta shim: in CJS it builds the URL as `file:${__filename}`, which a `#`, `?` or `%`
  // in the install path breaks (the library config below has a path-safe one).
  shims: false,
  sourcemap: false,
  splitting: false,
  external: ['../binding.cjs'],
} as const

export default defineConfig([
  {
    ...common,
    entry: { index: 'src-ts/index.ts' },
    format: ['esm', 'cjs'],
    dts: { entry: { index: 'src-ts/index.ts' } },
    // Everything in dist/ but the CLI's files (tsup adds "**/*" to these patterns).
    clean: ['!cli.*'],
    // CJS has no import.meta: `import.meta.url` becomes the bundle's path-safe URL (src-ts/cjs-shims.ts).
    esbuildOptions(options, { format }) {
      if (format !== 'cjs') return
      options.inject = [...(options.inject ?? []), 'src-ts/cjs-shims.ts']
      options.define = { ...options.define, 'import.meta.url': 'importMetaUrl' }
    },
  },
  {
    ...common,
    entry: { cli: 'src-ts/cli.ts' },
    format: ['esm'],
    clean: ['!index.*'],
  },
])
