#!/usr/bin/env node
// Regenerates crates/iron_cost/data/prices.json (OpenAI + Anthropic token prices) from the
// `@pydantic/genai-prices` npm package, and crates/iron_cost/data/source-matches.json (which
// catalog entry the data source's own matcher picks for every model named in the pinned SDKs).
//
// Usage: node scripts/update-prices.mjs [--date=YYYY-MM-DD]
//   --date  picks, for models whose price changes on a date, the price in force that day (default: today, UTC).
// The package is resolved from node_modules, or from the directory in $GENAI_PRICES_DIR.
//
// Output is deterministic for a given package version and date: models sorted by id, one per line,
// prices as integer pico-USD per token (USD per 1M tokens x 1e6) so the Rust side does no float math.
// Deliberate corrections of known data errors live in crates/iron_cost/src/corrections.rs, not here.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = join(ROOT, 'crates/iron_cost/data');
const PROVIDERS = ['openai', 'anthropic'];

// Maximum output tokens per model: the data source does not carry them, so they are kept here by hand
// from the providers' model pages. Models not listed fall back to the request's own limit (or 32768).
const MAX_OUTPUT_TOKENS = {
  'chatgpt-4o-latest': 16384,
  'gpt-3.5-turbo': 4096,
  'gpt-4': 8192,
  'gpt-4-turbo': 4096,
  'gpt-4.1': 32768,
  'gpt-4.1-mini': 32768,
  'gpt-4.1-nano': 32768,
  'gpt-4o': 16384,
  'gpt-4o-2024-05-13': 4096,
  'gpt-4o-mini': 16384,
  'gpt-5': 128000,
  'gpt-5-mini': 128000,
  'gpt-5-nano': 128000,
  'gpt-5.1': 128000,
  'gpt-5.2': 128000,
  o1: 100000,
  'o1-mini': 65536,
  'o1-preview': 32768,
  'o1-pro': 100000,
  o3: 100000,
  'o3-mini': 100000,
  'o3-pro': 100000,
  'o4-mini': 100000,
  'claude-3-haiku': 4096,
  'claude-3-opus-latest': 4096,
  'claude-3-sonnet': 4096,
  'claude-3-5-haiku-latest': 8192,
  'claude-3-5-sonnet': 8192,
  'claude-3-7-sonnet-latest': 64000,
  'claude-haiku-4-5': 64000,
  'claude-opus-4-0': 32000,
  'claude-opus-4-1': 32000,
  'claude-opus-4-5': 64000,
  'claude-opus-4-6': 128000,
  'claude-sonnet-4-0': 64000,
  'claude-sonnet-4-5': 64000,
  'claude-sonnet-4-6': 64000,
};

// Source price keys (USD per 1M tokens) -> our field names.
const PRICE_KEYS = {
  input_mtok: 'input',
  cache_read_mtok: 'cached_input',
  cache_write_mtok: 'cache_write_5m',
  cache_write_1h_mtok: 'cache_write_1h',
  output_mtok: 'output',
  input_audio_mtok: 'input_audio',
  cache_audio_read_mtok: 'cached_input_audio',
  output_audio_mtok: 'output_audio',
};

function parseArgs() {
  let date = new Date().toISOString().slice(0, 10);
  for (const arg of process.argv.slice(2)) {
    const m = /^--date=(\d{4}-\d{2}-\d{2})$/.exec(arg);
    if (m) date = m[1];
    else throw new Error(`unknown argument ${arg}; usage: node scripts/update-prices.mjs [--date=YYYY-MM-DD]`);
  }
  return date;
}

async function loadSource() {
  const dir = process.env.GENAI_PRICES_DIR;
  const req = createRequire(join(ROOT, 'package.json'));
  let pkgJson;
  try {
    // The package's `exports` map does not expose package.json: resolve its entry point (dist/…).
    pkgJson = dir ? join(dir, 'package.json') : join(dirname(dirname(req.resolve('@pydantic/genai-prices'))), 'package.json');
  } catch {
    throw new Error(
      '@pydantic/genai-prices is not installed: run `npm install --save-dev @pydantic/genai-prices@0.1.8`, ' +
        'or point GENAI_PRICES_DIR at an unpacked copy of the package',
    );
  }
  const pkg = JSON.parse(readFileSync(pkgJson, 'utf8'));
  const mod = await import(pathToFileURL(join(dirname(pkgJson), 'dist/index.js')).href);
  return { version: `${pkg.name}@${pkg.version}`, mod };
}

/** USD per 1M tokens -> integer pico-USD per token. */
function pico(usdPerMtok) {
  return Math.round(usdPerMtok * 1e6);
}

/** The price set in force on `date` (the source lists dated changes oldest first). */
function pricesOn(model, date) {
  if (!Array.isArray(model.prices)) return model.prices;
  const when = new Date(date);
  for (let i = model.prices.length - 1; i >= 0; i--) {
    const c = model.prices[i].constraint;
    if (c === undefined) return model.prices[i].prices;
    if (c.type === 'start_date' && when >= new Date(c.start_date)) return model.prices[i].prices;
    if (c.type !== 'start_date') throw new Error(`${model.id}: unsupported price constraint ${c.type}`);
  }
  return model.prices[0].prices;
}

/** Flattens the source's match logic into exact aliases and prefixes; other rules are reported. */
function matchRules(logic, id, out, warnings) {
  if ('or' in logic) for (const m of logic.or) matchRules(m, id, out, warnings);
  else if ('equals' in logic) out.aliases.add(logic.equals.toLowerCase());
  else if ('starts_with' in logic) out.prefixes.add(logic.starts_with.toLowerCase());
  else if ('regex' in logic) {
    // Only "<name>-<date>" patterns occur; the Rust matcher strips date suffixes itself.
    const m = /^\^([a-z0-9\\.-]+?)-\\d\{(?:8|4\}-\\d\{2\}-\\d\{2)\}\$$/.exec(logic.regex);
    if (m) out.aliases.add(m[1].replace(/\\\./g, '.').toLowerCase());
    else warnings.push(`${id}: regex rule ${logic.regex} dropped`);
  } else warnings.push(`${id}: rule ${JSON.stringify(logic)} dropped`);
}

function convertModel(provider, model, date, warnings) {
  const src = pricesOn(model, date);
  if (typeof src.input_mtok === 'undefined') return null; // audio-hour or free models: not token priced
  const entry = { provider };
  let threshold = null;
  const tier = {};
  for (const [key, field] of Object.entries(PRICE_KEYS)) {
    const v = src[key];
    if (v === undefined) continue;
    if (typeof v === 'number') {
      entry[field] = pico(v);
      continue;
    }
    entry[field] = pico(v.base);
    if (v.tiers.length !== 1) throw new Error(`${model.id}: ${key} has ${v.tiers.length} tiers; only one is supported`);
    const t = v.tiers[0];
    if (threshold !== null && threshold !== t.start) throw new Error(`${model.id}: tiers start at different sizes`);
    threshold = t.start;
    tier[field] = pico(t.price);
  }
  if (threshold !== null) entry.long_context = { above_input_tokens: threshold, ...tier };
  if (model.context_window) entry.context_window = model.context_window;
  if (MAX_OUTPUT_TOKENS[model.id]) entry.max_output_tokens = MAX_OUTPUT_TOKENS[model.id];
  const rules = { aliases: new Set(), prefixes: new Set() };
  matchRules(model.match, model.id, rules, warnings);
  rules.aliases.delete(model.id.toLowerCase());
  if (rules.aliases.size) entry.aliases = [...rules.aliases].sort();
  if (rules.prefixes.size) entry.prefixes = [...rules.prefixes].sort();
  return entry;
}

/** JSON with sorted keys, one model per line: small diffs when prices change. */
function render(doc) {
  const sortKeys = (v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]))
      : v;
  const lines = Object.keys(doc.models)
    .sort()
    .map((id) => `    ${JSON.stringify(id)}: ${JSON.stringify(sortKeys(doc.models[id]))}`);
  const head = Object.keys(doc)
    .filter((k) => k !== 'models')
    .sort()
    .map((k) => `  ${JSON.stringify(k)}: ${JSON.stringify(doc[k])},`);
  return `{\n${head.join('\n')}\n  "models": {\n${lines.join(',\n')}\n  }\n}\n`;
}

/** String literals of `export type <name> = 'a' | 'b' ...;` in a .d.ts file, or null if absent. */
function sdkLiterals(path, typeName) {
  if (!existsSync(path)) return null;
  const text = readFileSync(path, 'utf8');
  const m = new RegExp(`export type ${typeName} =([^;]*);`).exec(text);
  return m ? [...m[1].matchAll(/'([^']+)'/g)].map((x) => x[1]) : [];
}

/** For each SDK model name: the source entry its own matcher prices it with (null if none). */
function sourceMatches(mod, date) {
  const sdk = {
    openai: sdkLiterals(join(ROOT, 'node_modules/openai/resources/shared.d.ts'), 'ChatModel'),
    anthropic: sdkLiterals(join(ROOT, 'node_modules/@anthropic-ai/sdk/resources/messages/messages.d.ts'), 'Model'),
  };
  const out = {};
  for (const [providerId, names] of Object.entries(sdk)) {
    if (!names) continue;
    for (const name of names) {
      const calc = mod.calcPrice({ input_tokens: 1, output_tokens: 1 }, name, { providerId, timestamp: new Date(date) });
      out[name] = calc && calc.provider.id === providerId ? calc.model.id : null;
    }
  }
  return out;
}

async function main() {
  const date = parseArgs();
  const { version, mod } = await loadSource();
  const warnings = [];
  const models = {};
  for (const providerId of PROVIDERS) {
    const provider = mod.findProvider({ providerId });
    if (!provider) throw new Error(`provider ${providerId} missing from ${version}`);
    for (const model of provider.models) {
      const entry = convertModel(providerId, model, date, warnings);
      if (entry) models[model.id] = entry;
    }
  }
  const doc = {
    source: version,
    prices_as_of: date,
    unit: 'pico-USD per token (USD per 1M tokens x 1e6)',
    models,
  };
  writeFileSync(join(OUT_DIR, 'prices.json'), render(doc));
  const matches = sourceMatches(mod, date);
  const sorted = Object.fromEntries(Object.keys(matches).sort().map((k) => [k, matches[k]]));
  writeFileSync(join(OUT_DIR, 'source-matches.json'), `${JSON.stringify({ source: version, matches: sorted }, null, 1)}\n`);
  for (const w of warnings) console.warn(`warning: ${w}`);
  console.log(`wrote ${Object.keys(models).length} models from ${version} (prices as of ${date})`);
}

main().catch((err) => {
  console.error(`update-prices failed: ${err.message}`);
  process.exit(1);
});
