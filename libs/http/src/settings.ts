/** Thrown by a service's `loadConfig` with every violation, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly violations: readonly string[];
  constructor(service: string, violations: string[]) {
    super(`invalid ${service} configuration:\n  ${violations.join('\n  ')}`);
    this.violations = violations;
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Reads `SKEIN_*` settings from an environment, collecting every violation so that a
 * service reports them all at once: read everything, then call {@link SettingsReader.done}.
 */
export interface SettingsReader {
  /** A trimmed string, or `fallback` when unset or empty. */
  string(name: string, fallback: string): string;
  /** A trimmed, non-empty string; a violation when missing. */
  required(name: string, example?: string): string;
  /** An integer in [min, max], or `fallback` when unset or empty. */
  integer(name: string, fallback: number, min: number, max?: number): number;
  /** A required `redis://` or `rediss://` URL. */
  redisUrl(name: string): string;
  /** `SKEIN_LOG_LEVEL`, default `info`. */
  logLevel(): string;
  /** Records a violation found by the service's own checks. */
  violation(message: string): void;
  /** Throws ConfigError when anything was violated. */
  done(): void;
}

export function readSettings(service: string, env: NodeJS.ProcessEnv): SettingsReader {
  const violations: string[] = [];
  const string = (name: string, fallback: string) => env[name]?.trim() || fallback;
  return {
    string,
    required(name, example) {
      const v = env[name]?.trim() ?? '';
      if (v === '') violations.push(`${name} is required${example ? ` (for example ${example})` : ''}`);
      return v;
    },
    integer(name, fallback, min, max = Number.MAX_SAFE_INTEGER) {
      const raw = env[name]?.trim();
      if (raw === undefined || raw === '') return fallback;
      const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        violations.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
        return fallback;
      }
      return n;
    },
    redisUrl(name) {
      const v = this.required(name, 'redis://127.0.0.1:6379');
      if (v !== '' && !/^rediss?:\/\/[^\s]+$/.test(v)) violations.push(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(v)}`);
      return v;
    },
    logLevel() {
      const level = string('SKEIN_LOG_LEVEL', 'info');
      if (!LOG_LEVELS.includes(level)) violations.push(`SKEIN_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
      return level;
    },
    violation(message) {
      violations.push(message);
    },
    done() {
      if (violations.length > 0) throw new ConfigError(service, violations);
    },
  };
}
