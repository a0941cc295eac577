/**
 * Entry point of `ztm` once compiled (the images: `docker-entrypoint.sh ztm …`, `/usr/local/bin/ztm`).
 * From a checkout, `cli/ztm.js` runs the same main() through tsx.
 */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
