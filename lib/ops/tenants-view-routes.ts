/**
 * The tenants view's routes beside Bull Board (under the same base path and basic auth):
 * `tenants` (the page), `tenants.json` (the same page as JSON, redacted like every answer of the
 * board) and `tenants.css`. A bad query is 400 with one line; a registry that does not answer (the
 * janitor down) is 503 with one line; neither stops the board.
 */
import express, { type Request, type Response } from 'express';
import { ZtmError } from '../errors.js';
import type { Logger } from '../logger.js';
import { redactSecrets } from '../redact.js';
import { parseTenantsQuery, type TenantsView } from './tenants-view.js';
import { renderTenantsPage, TENANTS_CSP, TENANTS_CSS } from './tenants-view-page.js';

function statusOf(err: unknown): { status: number; code: string; message: string } {
  const message = redactSecrets(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ').slice(0, 300);
  const code = err instanceof ZtmError ? err.code : 'E_INTERNAL';
  const status = code === 'E_VALIDATION' ? 400 : code === 'E_NO_WORKER' || code === 'E_TIMEOUT' || code === 'E_REDIS_UNAVAILABLE' ? 503 : 500;
  return { status, code, message: status === 500 ? `the tenants view failed: ${message}` : message };
}

const text = (v: unknown): string => (typeof v === 'string' ? v.slice(0, 60) : '');

export function tenantsRouter(o: { view: TenantsView | undefined; log?: Logger }): express.Router {
  const router = express.Router();
  const noView = { status: 503, code: 'E_CONFIG', message: 'the tenants view has no registry to read here (ztm dashboard and the dashboard service read it through the janitor)' };

  router.get('/tenants.css', (_req, res) => void res.type('text/css').set('cache-control', 'max-age=300').send(TENANTS_CSS));

  router.get('/tenants', (req: Request, res: Response) => {
    res.set({ 'content-security-policy': TENANTS_CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'same-origin', 'cache-control': 'no-store' });
    const form = { q: text(req.query.q), status: text(req.query.status) };
    const send = (status: number, html: string) => void res.status(status).type('text/html').send(redactSecrets(html));
    let query;
    try {
      query = parseTenantsQuery(req.query);
    } catch (err) {
      const e = statusOf(err);
      return send(e.status, renderTenantsPage({ form, error: e.message }));
    }
    if (!o.view) return send(noView.status, renderTenantsPage({ form, error: noView.message }));
    o.view.page(query).then(
      (page) => send(200, renderTenantsPage({ form: { q: query.prefix, status: query.status ?? '', ...(req.query.limit ? { limit: query.limit } : {}) }, page, paged: Boolean(query.cursor) })),
      (err: unknown) => {
        const e = statusOf(err);
        if (e.status === 500) o.log?.warn({ err }, 'tenants view failed');
        send(e.status, renderTenantsPage({ form, error: e.message }));
      },
    );
  });

  router.get('/tenants.json', (req: Request, res: Response) => {
    res.set({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    const fail = (e: { status: number; code: string; message: string }) => void res.status(e.status).json({ error: { code: e.code, message: e.message } });
    let query;
    try {
      query = parseTenantsQuery(req.query);
    } catch (err) {
      return fail(statusOf(err));
    }
    if (!o.view) return fail(noView);
    o.view.page(query).then((page) => void res.json(page), (err: unknown) => {
      const e = statusOf(err);
      if (e.status === 500) o.log?.warn({ err }, 'tenants view failed');
      fail(e);
    });
  });
  return router;
}
