/** Thrown by a service's `loadConfig` with every violation, one per line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly violations: readonly string[];
  constructor(service: string, violations: string[]) {
    super(`invalid ${service} configuration:\n  ${violations.join('\n  ')}`);
    this.violations = violations;
  }
}

import { readFileSync } from 'node:fs';

/** TLS material for Redis, as node's `tls.connect` (and ioredis' `tls` option) takes it. */
export interface RedisTlsOptions {
  /** PEM of the CA that signed the server's certificate; absent: the system's CAs. */
  readonly ca?: string;
  /** PEM client certificate and key, for a server with `tls-auth-clients yes`. */
  readonly cert?: string;
  readonly key?: string;
}

/** How to reach Redis: `new Redis(url, { ...options, ...yours })` for every client and subscriber. */
export interface RedisSettings {
  /**
   * `SKEIN_REDIS_URL` (required): `redis://[[user]:password@]host:port[/db]`, or
   * `rediss://…` for TLS. A user and password in it are sent with AUTH (an ACL user, or
   * `requirepass` with no user); percent-encode `@`, `:` and `/` in them.
   */
  readonly url: string;
  /**
   * Connection options the URL cannot carry, for every client made from `url`: `tls`
   * with the contents of `SKEIN_REDIS_TLS_CA_FILE`, `SKEIN_REDIS_TLS_CERT_FILE` and
   * `SKEIN_REDIS_TLS_KEY_FILE` (`rediss://` only). Empty when none is set.
   */
  readonly options: { readonly tls?: RedisTlsOptions };
}

/** The URL with its user and password masked, for messages. */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1***@');
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
  /** `SKEIN_REDIS_URL` and the `SKEIN_REDIS_TLS_*_FILE` settings (files are read now). */
  redis(): RedisSettings;
  /**
   * The same, for a process that can run without Redis (a node: the embedded control
   * store): null when `SKEIN_REDIS_URL` is unset or empty (then no `SKEIN_REDIS_TLS_*` may be set).
   */
  redisIfSet(): RedisSettings | null;
  /**
   * A required secret of at least `minLength` printable ASCII characters without spaces
   * (it travels in an HTTP header). Violations never quote the value.
   */
  secret(name: string, minLength: number): string;
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
      if (v !== '' && !/^rediss?:\/\/[^\s]+$/.test(v)) violations.push(`${name} must be a redis:// or rediss:// URL, got ${JSON.stringify(withoutCredentials(v))}`);
      return v;
    },
    redis() {
      const url = this.redisUrl('SKEIN_REDIS_URL');
      const tls: { ca?: string; cert?: string; key?: string } = {};
      let unreadable = false;
      for (const [member, name] of [['ca', 'SKEIN_REDIS_TLS_CA_FILE'], ['cert', 'SKEIN_REDIS_TLS_CERT_FILE'], ['key', 'SKEIN_REDIS_TLS_KEY_FILE']] as const) {
        const file = string(name, '');
        if (file === '') continue;
        try {
          tls[member] = readFileSync(file, 'utf8');
        } catch (err) {
          unreadable = true;
          violations.push(`${name} must name a readable PEM file, got ${JSON.stringify(file)} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
        }
      }
      const given = Object.keys(tls).length > 0;
      if ((tls.cert === undefined) !== (tls.key === undefined) && !unreadable) {
        violations.push('SKEIN_REDIS_TLS_CERT_FILE and SKEIN_REDIS_TLS_KEY_FILE go together: set both or neither');
      }
      if (given && url !== '' && !url.startsWith('rediss://')) violations.push('SKEIN_REDIS_TLS_* settings need a rediss:// SKEIN_REDIS_URL');
      return { url, options: given ? { tls } : {} };
    },
    redisIfSet() {
      if ((env.SKEIN_REDIS_URL?.trim() ?? '') !== '') return this.redis();
      for (const name of ['SKEIN_REDIS_TLS_CA_FILE', 'SKEIN_REDIS_TLS_CERT_FILE', 'SKEIN_REDIS_TLS_KEY_FILE']) {
        if (string(name, '') !== '') violations.push(`${name} needs a rediss:// SKEIN_REDIS_URL`);
      }
      return null;
    },
    secret(name, minLength) {
      const v = env[name] ?? '';
      if (v.length < minLength || !/^[\x21-\x7e]+$/.test(v)) {
        violations.push(`${name} is required: at least ${minLength} printable ASCII characters without spaces (for example: openssl rand -base64 32)`);
      }
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
