import { type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** pino level. Default info. */
  level?: string;
  /** json, pretty or auto (pretty when stdout is a terminal). Default auto. */
  format?: 'json' | 'pretty' | 'auto';
}

/** The one logger of a process: JSON in production, readable on a terminal. */
export function createLogger({ level = 'info', format = 'auto' }: LoggerOptions = {}): Logger {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l' } },
    });
  }
  return pino({ level, base: { service: 'vane' } });
}
