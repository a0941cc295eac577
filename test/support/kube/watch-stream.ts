/**
 * A watch response: newline-delimited `{"type":..., "object":...}` on a chunked 200, as the
 * apiserver streams it. Without a resourceVersion (or with "0") it starts with synthetic ADDED
 * events for the current state; with one it replays every event after it (410 Expired as an ERROR
 * event, "too old resource version", when that version is outside the retained history window:
 * store.ts `retention`, or compacted away). Selectors apply to transitions the way the watch
 * cache does: an object that stops matching is sent as DELETED, one that starts matching as ADDED.
 * With allowWatchBookmarks, a BOOKMARK (just the kind and metadata.resourceVersion) is sent every
 * `bookmarkEveryMs`, so a client can resume from a recent version even when nothing it
 * watches changed.
 */
import type { ServerResponse } from 'node:http';
import { badRequest, type KubeObject, type ResourceType } from './objects.js';
import { fieldSelector, labelSelector } from './selectors.js';
import type { ObjectStore, StoreEvent } from './store.js';

export interface WatchParams {
  rt: ResourceType;
  /** undefined: every namespace. */
  namespace: string | undefined;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  timeoutSeconds?: number;
  allowWatchBookmarks?: boolean;
  /** Real ms between bookmarks (behaviour watch.bookmarkEveryS, scaled). */
  bookmarkEveryMs?: number;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** Maps a stored event to what a watcher with this filter sees (undefined: nothing). */
function translate(ev: StoreEvent, match: (o: KubeObject | undefined) => boolean): EventType | undefined {
  const now = match(ev.object);
  switch (ev.type) {
    case 'ADDED': return now ? 'ADDED' : undefined;
    case 'DELETED': return match(ev.prev ?? ev.object) ? 'DELETED' : undefined;
    case 'MODIFIED': {
      const before = match(ev.prev);
      if (before && now) return 'MODIFIED';
      if (now) return 'ADDED';
      if (before) return 'DELETED';
      return undefined;
    }
  }
}

/**
 * Validates the parameters (throwing a 400 ApiError before anything is written), then streams
 * until `timeoutSeconds`, the client goes away, or `stop()` (server close) is called.
 */
export function startWatch(store: ObjectStore, params: WatchParams, res: ServerResponse): { stop(): void; done: Promise<void>; expired: boolean } {
  const { rt, namespace } = params;
  const byLabel = labelSelector(params.labelSelector);
  const byField = fieldSelector(rt, params.fieldSelector);
  const match = (o: KubeObject | undefined): boolean => o !== undefined && byLabel(o) && byField(o);
  const rvParam = params.resourceVersion ?? '';
  let fromRv: number | undefined;
  if (rvParam !== '' && rvParam !== '0') {
    if (!/^[0-9]+$/.test(rvParam)) throw badRequest(`invalid resource version: strconv.ParseUint: parsing "${rvParam}": invalid syntax`);
    fromRv = Number(rvParam);
  }

  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  res.flushHeaders();
  const send = (type: string, object: unknown): void => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
  };

  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  let timer: NodeJS.Timeout | undefined;
  let bookmarks: NodeJS.Timeout | undefined;
  let cursor = 0;
  const drain = (): void => {
    for (const ev of store.eventsAfter(cursor)) {
      cursor = ev.rv;
      if (ev.rt !== rt || (namespace !== undefined && rt.namespaced && ev.namespace !== namespace)) continue;
      const type = translate(ev, match);
      if (type !== undefined) send(type, ev.object);
    }
  };
  const stop = (): void => {
    store.off('event', drain);
    if (timer) clearTimeout(timer);
    if (bookmarks) clearInterval(bookmarks);
    if (!res.writableEnded) res.end();
    finish();
  };

  if (fromRv === undefined) {
    const snapshot = store.list(rt, namespace, { labelSelector: params.labelSelector, fieldSelector: params.fieldSelector });
    for (const obj of snapshot.items) send('ADDED', obj);
    cursor = Number(snapshot.resourceVersion);
  } else if ((store.expire(), fromRv < store.compactedRv)) {
    send('ERROR', {
      kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
      message: `too old resource version: ${fromRv} (${store.compactedRv})`, reason: 'Expired', code: 410,
    });
    stop();
    return { stop, done, expired: true };
  } else {
    cursor = fromRv;
  }
  drain();
  store.on('event', drain);
  if (params.allowWatchBookmarks && params.bookmarkEveryMs !== undefined && params.bookmarkEveryMs > 0) {
    bookmarks = setInterval(() => {
      drain();
      send('BOOKMARK', { kind: rt.kind, apiVersion: rt.group === '' ? rt.version : `${rt.group}/${rt.version}`, metadata: { resourceVersion: String(store.currentRv()) } });
    }, params.bookmarkEveryMs);
    bookmarks.unref();
  }
  if (params.timeoutSeconds !== undefined && params.timeoutSeconds > 0) {
    timer = setTimeout(stop, params.timeoutSeconds * 1000);
    timer.unref();
  }
  // Not req 'close': that fires once the (empty) request body is read, the socket's end is res 'close'.
  res.once('close', stop);
  return { stop, done, expired: false };
}
