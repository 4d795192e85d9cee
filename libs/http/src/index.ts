export { acceptUtf8JsonOnly, asSkeinError, problemDocumentOptions, sendProblem } from './problems.ts';
export { ConfigError, readSettings, type RedisSettings, type RedisTlsOptions, type SettingsReader } from './settings.ts';
export { exitOnUncaught, loadOrExit, stopOnSignals } from './lifecycle.ts';
export { createTimerJobs, type TimerJobs, type TimerJobsLogger } from './timer-jobs.ts';
export { FastHistogram, type HistogramConfiguration, type MetricRegistry } from './histogram.ts';
