import { stringify as toYaml } from 'yaml';
import type { Output } from './settings.ts';

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function useColour(stream: NodeJS.WriteStream = process.stdout, env = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof CODES;

export function paint(text: string, colour: Colour, on = useColour()): string {
  return on ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
}

/** The colour of a phase or verdict. */
export function phaseColour(phase: string): Colour {
  if (phase === 'succeeded' || phase === 'pass') return 'green';
  if (phase === 'failed' || phase === 'aborted' || phase === 'rolling-back' || phase === 'fail') return 'red';
  if (phase === 'paused' || phase === 'awaiting-promotion' || phase === 'inconclusive') return 'yellow';
  return 'cyan';
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const width = (s: string) => s.replace(ANSI, '').length;

/** Columns padded to their widest cell, with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c))))
      .join('  ')
      .trimEnd();
  return [fmt(header.map((h) => paint(h, 'bold'))), ...rows.map(fmt)].join('\n');
}

/** Writes `data` as JSON or YAML, or `text()` for a table. */
export function emit(output: Output, data: unknown, text: () => string): void {
  if (output === 'json') process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else if (output === 'yaml') process.stdout.write(toYaml(data));
  else {
    const t = text();
    process.stdout.write(t.endsWith('\n') ? t : `${t}\n`);
  }
}
