/**
 * The AWS SDK warns on every start that releases after January 2027 will need Node 22. Our
 * versions are pinned and supported on Node 20, so the warning only adds noise to operators' logs.
 */
import { state } from '@aws-sdk/core/client';

state.warningEmitted = true;
