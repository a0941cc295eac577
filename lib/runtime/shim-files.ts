/** Files the shim leaves in a workspace for the local runtime to read (one place for both sides). */

/** In `<workspace>/.shim/`: the final checkpoint is in S3, so the workspace holds nothing S3 lacks. */
export const STOPPED_CLEAN = 'stopped-clean';
