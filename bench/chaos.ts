/**
 * `npm run chaos -- --trials N [--seed S] [--window W]`: the long crash test. Prints a JSON report
 * (records written, delivered, lost, duplicates, most duplicates seen in one run, kills by crash point)
 * and exits 1 if any record was lost or a checkpoint was off a record boundary.
 */
import { runChaos } from "../test/support/chaos.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const started = performance.now();
const report = await runChaos({
  trials: arg("trials", 200),
  seed: arg("seed", Date.now() % 1_000_000),
  window: arg("window", 200),
  progress: (line) => console.error(line),
});
console.log(
  JSON.stringify({ ...report, seconds: Math.round((performance.now() - started) / 1000) }, null, 2),
);
process.exitCode = report.lost === 0 && report.offBoundaryCheckpoints === 0 ? 0 : 1;
