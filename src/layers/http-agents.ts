/**
 * Node's http Agent, kept apart per route. The http layer forces its own
 * per-(account, proxy) agents into every request it sees, but some requests
 * never pass through the patched `request`/`get`: `new http.ClientRequest()`,
 * functions captured before install (`const { get } = require('https')`,
 * transpiled interop copies), Node's own env-proxy agents. Those reach
 * whatever Agent the caller gave, often one shared keep-alive agent.
 *
 * `addRequest` runs synchronously in the ClientRequest constructor — the
 * caller's context — so the route is read there and carried on the options
 * the Agent copies down to `createConnection` (guard/route-mark): the socket
 * hook then decides for the request's account even when the connection is
 * made later from the agent's queue. `getName` adds the route to the pool
 * key, so one route's keep-alive sockets are never handed to another's
 * requests, and the request is tagged for the ownership guard.
 */
import http from 'node:http';
import type { Router } from '../routing/router.js';
import { BYPASS_ROUTE } from '../routing/route.js';
import { routeMarkFor, routeMarkOf, withRouteMark } from '../guard/route-mark.js';
import { tagRequest } from '../guard/ownership.js';
import { requestTarget, type RequestOptions } from './http-args.js';
import { patch, restoreAll, type Restore } from './layer.js';

type AddRequest = (this: http.Agent, req: http.ClientRequest, options: RequestOptions, ...rest: unknown[]) => void;
type GetName = (this: http.Agent, options?: RequestOptions) => string;

export function installHttpAgentPartition(router: Router): Restore {
  const proto = http.Agent.prototype as unknown as { addRequest: AddRequest; getName: GetName };
  const addRequest = proto.addRequest;
  const getName = proto.getName;

  const routedAddRequest: AddRequest = function routedAddRequest(req, options, ...rest): void {
    let mark = routeMarkFor(options);
    // Bypass connections serve everyone: nothing to key or check.
    if (mark?.route === BYPASS_ROUTE) return addRequest.call(this, req, options, ...rest);
    if (!mark) {
      const secure = (this as { protocol?: string }).protocol === 'https:';
      const account = router.currentAccount();
      const route = router.routeKey(requestTarget(options, secure), account);
      // Bypass connections serve everyone: nothing to key or check.
      if (route === BYPASS_ROUTE) return addRequest.call(this, req, options, ...rest);
      mark = { route, account, decided: false };
      options = withRouteMark(options, mark);
    }
    tagRequest(req, mark.route);
    addRequest.call(this, req, options, ...rest);
  };

  const routedGetName: GetName = function routedGetName(options): string {
    const name: string = getName.call(this, options);
    const mark = routeMarkOf(options);
    return mark && mark.route !== BYPASS_ROUTE ? `${name}:route=${JSON.stringify(mark.route)}` : name;
  };

  return restoreAll([patch(proto, 'addRequest', routedAddRequest), patch(proto, 'getName', routedGetName)]);
}
