/**
 * uWebSockets.js as the ingress needs it: the native addon, never the package's pure-JS stand-in.
 * `@trufflesuite/uws-js-unofficial` ships native builds for Node ABI ≤ 115 (Node 20) only; on any
 * other Node (or with UWS_USE_FALLBACK set) it prints a warning and returns an implementation on
 * node:http that routes differently (query strings break routing, no getParameter, no SSLApp).
 * Production would then run another server than the one tested, so the ingress refuses to start.
 */
import uWS from '@trufflesuite/uws-js-unofficial';
import { RuntimeError } from '../errors.js';

/** The Node versions whose ABI the package ships a native build for. */
export const UWS_SUPPORTED_NODE = 'Node 20 (ABI 115) on Linux x64/arm64 or macOS';

/** True when the loaded module is the native addon (the stand-in lacks these exports). */
export function isNativeUws(mod: unknown = uWS): boolean {
  const m = mod as Record<string, unknown> | null;
  return m !== null && typeof m === 'object' && typeof m.SSLApp === 'function' && typeof m.getParts === 'function';
}

/** Throws one clear line unless the native addon loaded. */
export function assertNativeUws(mod: unknown = uWS, versions: NodeJS.ProcessVersions = process.versions): void {
  if (isNativeUws(mod)) return;
  throw new RuntimeError(`uWebSockets.js native addon did not load on Node ${versions.node} (ABI ${versions.modules}): the ingress runs only on ${UWS_SUPPORTED_NODE}; the package's JavaScript fallback is refused (it routes differently)`);
}
