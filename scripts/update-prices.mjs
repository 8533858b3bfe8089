#!/usr/bin/env node
// Regenerates crates/iron_cost/data/prices.json (OpenAI + Anthropic token prices) from the
// `@pydantic/genai-prices` npm package, and crates/iron_cost/data/source-matches.json (which
// catalog entry the data source's own matcher picks for every model named in the pinned SDKs).
//
// A second source, LiteLLM's price map (`litellm/model_prices_and_context_window_backup.json` in the
// `litellm` PyPI package), gives what genai-prices does not carry, for OpenAI models only: the rates of
// the priority and flex service tiers, and audio rates a model lacks. An entry is used only where its
// standard input and output rates equal genai-prices' for the same model (so both describe one price
// period); entries are matched to catalog models by id or alias, with a snapshot date suffix or without.
//
// Usage: node scripts/update-prices.mjs [--date=YYYY-MM-DD] [--litellm=SOURCE [--litellm-version=X.Y.Z]]
//   --date     picks, for models whose price changes on a date, the price in force that day (default: today, UTC).
//   --litellm  pypi            download the newest litellm wheel with `pip download` (needs pip)
//              pypi@X.Y.Z      download that version
//              <file>.whl      a litellm wheel already downloaded (version from its file name)
//              <file>.json     the price map itself; give its package version with --litellm-version
//              Default: pypi@<the litellm version prices.json records>, so a rerun changes only what was asked.
// The genai-prices package is resolved from node_modules, or from the directory in $GENAI_PRICES_DIR.
//
// Output is deterministic for a given package version and date: models sorted by id, one per line,
// prices as integer pico-USD per token (USD per 1M tokens x 1e6; web search fees in pico-USD per search)
// so the Rust side does no float math. Per model: text rates, audio rates (input_audio, cached_input_audio,
// output_audio), an optional long_context tier, optional priority and flex service tiers (each with its
// own optional long_context), and web_search.
// Deliberate corrections of known data errors live in crates/iron_cost/src/corrections.rs, not here.

import { readFileSync, writeFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
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

const USAGE = 'usage: node scripts/update-prices.mjs [--date=YYYY-MM-DD] [--litellm=pypi[@X.Y.Z]|<file>.whl|<file>.json [--litellm-version=X.Y.Z]]';

function parseArgs() {
  const args = { date: new Date().toISOString().slice(0, 10), litellm: null, litellmVersion: null };
  for (const arg of process.argv.slice(2)) {
    let m;
    if ((m = /^--date=(\d{4}-\d{2}-\d{2})$/.exec(arg))) args.date = m[1];
    else if ((m = /^--litellm=(.+)$/.exec(arg))) args.litellm = m[1];
    else if ((m = /^--litellm-version=([0-9][0-9A-Za-z.+-]*)$/.exec(arg))) args.litellmVersion = m[1];
    else throw new Error(`unknown argument ${arg}; ${USAGE}`);
  }
  return args;
}

const LITELLM_MAP = 'litellm/model_prices_and_context_window_backup.json';

/** The map file out of a litellm wheel (a zip), read with Python's zipfile (pip brings Python). */
function mapFromWheel(wheel) {
  const py = 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))';
  return execFileSync('python3', ['-c', py, wheel, LITELLM_MAP], { maxBuffer: 1 << 28 }).toString('utf8');
}

function wheelVersion(wheel) {
  const m = /^litellm-([^-]+)-/.exec(basename(wheel));
  if (!m) throw new Error(`${wheel} is not named like a litellm wheel (litellm-<version>-….whl)`);
  return m[1];
}

/** LiteLLM's price map and its package version, from the --litellm argument (see the header). */
function loadLitellm(args) {
  let spec = args.litellm;
  if (!spec) {
    const current = join(OUT_DIR, 'prices.json');
    const recorded = existsSync(current) && /^litellm@([^\s]+)/.exec(JSON.parse(readFileSync(current, 'utf8')).second_source ?? '');
    if (!recorded) throw new Error(`prices.json records no litellm version: pass --litellm; ${USAGE}`);
    spec = `pypi@${recorded[1]}`;
  }
  const pypi = /^pypi(?:@(.+))?$/.exec(spec);
  if (pypi) {
    const dir = mkdtempSync(join(tmpdir(), 'litellm-'));
    try {
      const req = pypi[1] ? `litellm==${pypi[1]}` : 'litellm';
      console.log(`downloading ${req} from PyPI (pip download --no-deps)`);
      execFileSync('python3', ['-m', 'pip', 'download', req, '--no-deps', '--only-binary=:all:', '-q', '-d', dir], { stdio: 'inherit' });
      const wheel = readdirSync(dir).find((f) => f.startsWith('litellm-') && f.endsWith('.whl'));
      if (!wheel) throw new Error('pip downloaded no litellm wheel');
      return { version: wheelVersion(wheel), map: JSON.parse(mapFromWheel(join(dir, wheel))) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (spec.endsWith('.whl')) return { version: wheelVersion(spec), map: JSON.parse(mapFromWheel(spec)) };
  if (!args.litellmVersion) throw new Error('--litellm=<file>.json needs --litellm-version (the litellm package version it came from)');
  return { version: args.litellmVersion, map: JSON.parse(readFileSync(spec, 'utf8')) };
}

// LiteLLM keys (USD per token) -> our field names, for a service tier (suffix `_priority` / `_flex`,
// and `_above_272k_tokens_<tier>` for its long-context rates) and for audio.
const LITELLM_TIER_KEYS = {
  input_cost_per_token: 'input',
  cache_read_input_token_cost: 'cached_input',
  cache_creation_input_token_cost: 'cache_write_5m',
  output_cost_per_token: 'output',
};
const LITELLM_AUDIO_KEYS = {
  input_cost_per_audio_token: 'input_audio',
  cache_read_input_audio_token_cost: 'cached_input_audio',
  output_cost_per_audio_token: 'output_audio',
};
const SERVICE_TIERS = ['priority', 'flex'];
// Multipliers of a model's rates on OpenAI's regional (data-residency) endpoints.
const REGIONAL_KEYS = ['regional_processing_uplift_multiplier_us', 'regional_processing_uplift_multiplier_eu'];
const SNAPSHOT_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{8})$/;

/** USD per token -> integer pico-USD per token. */
function picoPerToken(usd) {
  return Math.round(usd * 1e12);
}

/** One rate over the LiteLLM entries of a model (the highest, with a warning, if they differ). */
function litellmRate(entries, key, id, warnings) {
  const values = entries.filter(([, v]) => typeof v[key] === 'number').map(([k, v]) => [k, picoPerToken(v[key])]);
  if (!values.length) return undefined;
  const max = Math.max(...values.map(([, p]) => p));
  if (values.some(([, p]) => p !== max)) warnings.push(`${id}: litellm ${key} differs between ${values.map(([k, p]) => `${k}=${p}`).join(', ')}; the highest is kept`);
  return max;
}

/** Adds service-tier rates, and the audio rates genai-prices lacks, to OpenAI models. */
function addLitellm(models, map, warnings) {
  const names = new Map();
  for (const [id, e] of Object.entries(models)) {
    if (e.provider !== 'openai') continue;
    for (const n of [id, ...(e.aliases ?? [])]) names.set(n, id);
  }
  const interesting = (v) => Object.keys(v).some((k) => SERVICE_TIERS.some((t) => k.endsWith(`_${t}`)) || k in LITELLM_AUDIO_KEYS || REGIONAL_KEYS.includes(k));
  const byModel = new Map();
  for (const [key, v] of Object.entries(map)) {
    if (!v || typeof v !== 'object' || v.litellm_provider !== 'openai' || !interesting(v)) continue;
    const k = key.toLowerCase();
    // An exact name first: `gpt-4o-2024-05-13` is its own model, not a snapshot of `gpt-4o`.
    const id = names.get(k) ?? names.get(k.replace(SNAPSHOT_SUFFIX, ''));
    if (!id) continue;
    const e = models[id];
    if (picoPerToken(v.input_cost_per_token ?? -1) !== e.input || picoPerToken(v.output_cost_per_token ?? 0) !== (e.output ?? 0)) {
      warnings.push(`${id}: litellm ${key} has other standard rates; its tier and audio rates are not used`);
      continue;
    }
    if (!byModel.has(id)) byModel.set(id, []);
    byModel.get(id).push([key, v]);
  }
  for (const [id, entries] of byModel) {
    const e = models[id];
    for (const [key, field] of Object.entries(LITELLM_AUDIO_KEYS)) {
      const v = e[field] === undefined ? litellmRate(entries, key, id, warnings) : undefined;
      if (v !== undefined) e[field] = v;
    }
    for (const tier of SERVICE_TIERS) {
      const rates = (suffix) => {
        const out = {};
        for (const [key, field] of Object.entries(LITELLM_TIER_KEYS)) {
          const v = litellmRate(entries, `${key}${suffix}_${tier}`, id, warnings);
          if (v !== undefined) out[field] = v;
        }
        return out;
      };
      const t = rates('');
      if (t.input === undefined || t.output === undefined) {
        if (Object.keys(t).length) warnings.push(`${id}: litellm lists ${tier} rates without input and output; none kept`);
        continue;
      }
      const long = rates('_above_272k_tokens');
      if (Object.keys(long).length) {
        if (!e.long_context) warnings.push(`${id}: litellm lists ${tier} long-context rates but genai-prices no long-context tier; dropped`);
        else if (long.input === undefined) warnings.push(`${id}: litellm ${tier} long-context rates lack input; dropped`);
        // The threshold is genai-prices' (the standard long-context tier's).
        else t.long_context = { above_input_tokens: e.long_context.above_input_tokens, ...long };
      }
      e[tier] = t;
    }
    // OpenAI's data-residency endpoints (`us.api.openai.com`, `eu.api.openai.com`, …) charge a
    // surcharge on the models that list one; kept as whole percent (the highest region's).
    const uplifts = entries.flatMap(([, v]) => REGIONAL_KEYS.map((k) => v[k])).filter((m) => typeof m === 'number' && m > 1);
    if (uplifts.length) {
      // Rounded up to a whole percent: a hold must not fall below the bill.
      const toPercent = (m) => Math.ceil((m - 1) * 100 - 1e-9);
      const percent = toPercent(Math.max(...uplifts));
      if (uplifts.some((m) => toPercent(m) !== percent)) warnings.push(`${id}: litellm regional uplifts differ (${uplifts.join(', ')}); the highest is kept`);
      e.regional_uplift_percent = percent;
    }
  }
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
  // USD per 1,000 web searches -> integer pico-USD per search.
  if (typeof src.web_searches_kcount === 'number') entry.web_search = Math.round(src.web_searches_kcount * 1e9);
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
  const args = parseArgs();
  const date = args.date;
  const { version, mod } = await loadSource();
  const litellm = loadLitellm(args);
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
  addLitellm(models, litellm.map, warnings);
  const doc = {
    source: version,
    second_source: `litellm@${litellm.version} (${LITELLM_MAP}): OpenAI priority and flex rates, audio rates the first source lacks, data-residency surcharges`,
    prices_as_of: date,
    unit: 'pico-USD per token (USD per 1M tokens x 1e6); web_search: pico-USD per search (USD per 1k searches x 1e9)',
    models,
  };
  writeFileSync(join(OUT_DIR, 'prices.json'), render(doc));
  const matches = sourceMatches(mod, date);
  const sorted = Object.fromEntries(Object.keys(matches).sort().map((k) => [k, matches[k]]));
  writeFileSync(join(OUT_DIR, 'source-matches.json'), `${JSON.stringify({ source: version, matches: sorted }, null, 1)}\n`);
  for (const w of warnings) console.warn(`warning: ${w}`);
  console.log(`wrote ${Object.keys(models).length} models from ${version} and litellm@${litellm.version} (prices as of ${date})`);
}

main().catch((err) => {
  console.error(`update-prices failed: ${err.message}`);
  process.exit(1);
});
