import type { FetchFunction } from './http.ts';

// undici is loaded on the first request, not with the client: importing it costs 130 to
// 250 ms on a 2-core machine, most of `skein --version` or `skein --help` when loaded eagerly.
let undici: Promise<typeof import('undici')> | undefined;

/**
 * The default transport: undici's `request` over its global keep-alive agent. It does
 * the same job as the global `fetch` for a fraction of the CPU per request (measured:
 * about 2.5× the appends/s from one load-generating process), which matters most when
 * the client shares a machine with the cluster.
 */
export const undiciFetch: FetchFunction = async (url, init) => {
  const { request } = await (undici ??= import('undici'));
  const res = await request(url, {
    method: init.method as 'GET',
    headers: init.headers,
    body: init.body,
    signal: init.signal,
  });
  return {
    status: res.statusCode,
    headers: {
      get(name: string) {
        const v = res.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    },
    text: () => res.body.text(),
    body: res.body,
  };
};
