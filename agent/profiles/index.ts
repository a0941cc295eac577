/** The profile named by AGENT_PROFILE. */
import type { AgentSettings } from '../../lib/agent-profiles.js';
import { customProfile } from './custom.js';
import { openclawProfile } from './openclaw.js';
import type { AgentProfile } from './profile.js';
import { referenceProfile } from './reference.js';
import { zeroclawProfile } from './zeroclaw.js';

export function profileFor(settings: AgentSettings): AgentProfile {
  switch (settings.profile) {
    case 'reference': return referenceProfile;
    case 'zeroclaw': return zeroclawProfile;
    case 'openclaw': return openclawProfile;
    case 'custom': return customProfile(settings);
  }
}

export type { AgentLaunch, AgentProfile, Probe, ProfileContext } from './profile.js';
