// Helpers shared by the benchmarks' node load generators (bench/proxy/streams.mjs,
// bench/distributed/tokens.mjs).

/** Parses `--flag value` pairs of ARGV into a copy of DEFAULTS: FLAGS maps each flag to
 * [key, 'string' | 'number']. An unknown flag exits 2 with a message naming TOOL. */
export function parseFlags(argv, tool, flags, defaults) {
  const o = { ...defaults };
  for (let i = 2; i < argv.length; i++) {
    const spec = flags[argv[i]];
    if (spec === undefined) {
      console.error(`${tool}: unknown argument ${argv[i]}`);
      process.exit(2);
    }
    const [key, type] = spec;
    o[key] = type === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    i++;
  }
  return o;
}

/** Milliseconds on a monotonic clock. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** The P-th percentile (nearest rank) of the ascending SORTED values; NaN when empty. */
export function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

/** X with three decimals, "nan" when not finite. */
export const f = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'nan');
