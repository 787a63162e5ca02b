import type http from 'node:http';

/**
 * One HTTP handler of the web port: it answers the request and returns true, or returns false and
 * the next one is tried. Status, metrics and the web client each add theirs; http/ serves them.
 */
export type Route = (req: http.IncomingMessage, res: http.ServerResponse) => boolean | Promise<boolean>;
