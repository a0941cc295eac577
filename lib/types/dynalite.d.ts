/** Minimal types for dynalite 4 (ships none): the factory returns a not-yet-listening server. */
declare module 'dynalite' {
  interface DynaliteOptions {
    /** LevelDB directory; in-memory when omitted. */
    path?: string;
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
    ssl?: boolean;
    verbose?: boolean;
    debug?: boolean;
  }
  function dynalite(options?: DynaliteOptions): import('node:http').Server;
  export = dynalite;
}
