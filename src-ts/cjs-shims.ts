// Injected into the CJS build only (tsup.config.ts), where `import.meta.url` is replaced by this URL.
// pathToFileURL escapes `#`, `?` and `%` in the path; tsup's own shim (`file:${__filename}`) does not.
import { pathToFileURL } from 'node:url'

export const importMetaUrl = pathToFileURL(__filename).href
