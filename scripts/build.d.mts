// Types of scripts/build.mjs (plain JavaScript so that cli/ztm.js can run it before anything is compiled).
export declare const ROOT: string;
export declare const SOURCE_DIRS: readonly string[];
export declare const STAMP: string;
export declare function sources(): { files: string[]; newest: number };
export declare function isFresh(): boolean;
export declare function buildDist(): Promise<number>;
export declare function ensureBuilt(): Promise<void>;
