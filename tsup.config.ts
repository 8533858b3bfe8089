import { defineConfig } from 'tsup'

export default defineConfig({
  entry: { index: 'src-ts/index.ts', cli: 'src-ts/cli.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'src-ts/index.ts' } },
  target: 'node20',
  platform: 'node',
  shims: true,
  clean: true,
  sourcemap: false,
  splitting: false,
  external: ['../binding.cjs'],
})
