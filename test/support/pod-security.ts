/** Pod Security Admission's `restricted` profile as a check of a pod spec (what the chart's tenant namespace enforces). */
import type { V1PodSpec } from '@kubernetes/client-node';

/**
 * The Pod Security Standards `restricted` profile (which includes `baseline`), as the admission
 * plugin checks a pod spec: what it returns is what `enforce: restricted` would refuse.
 */
export function restrictedViolations(spec: V1PodSpec): string[] {
  const out: string[] = [];
  const containers = [...(spec.initContainers ?? []), ...spec.containers, ...((spec.ephemeralContainers ?? []) as typeof spec.containers)];
  const psc = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) out.push('host namespaces');
  const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  for (const v of spec.volumes ?? []) {
    const kinds = Object.keys(v).filter((k) => k !== 'name');
    if (!kinds.every((k) => allowedVolumes.includes(k))) out.push(`volume ${v.name}: ${kinds.join(',')}`);
  }
  if (psc.runAsUser === 0) out.push('pod runAsUser 0');
  if (psc.seLinuxOptions?.user || psc.seLinuxOptions?.role) out.push('pod seLinux user/role');
  const safeSysctls = ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes'];
  for (const s of psc.sysctls ?? []) if (!safeSysctls.includes(s.name)) out.push(`sysctl ${s.name}`);
  const podSeccomp = psc.seccompProfile?.type;
  if (podSeccomp === 'Unconfined') out.push('pod seccomp Unconfined');
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const n = `container ${c.name}`;
    if (sc.privileged) out.push(`${n}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${n}: allowPrivilegeEscalation must be false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) out.push(`${n}: capabilities must drop ALL`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') out.push(`${n}: adds ${cap}`);
    if (sc.runAsNonRoot === false || (sc.runAsNonRoot !== true && psc.runAsNonRoot !== true)) out.push(`${n}: runAsNonRoot`);
    if (sc.runAsUser === 0) out.push(`${n}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${n}: seccompProfile RuntimeDefault or Localhost`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') out.push(`${n}: procMount`);
    if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role) out.push(`${n}: seLinux user/role`);
    if (sc.appArmorProfile?.type === 'Unconfined') out.push(`${n}: AppArmor Unconfined`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${n}: hostPort ${p.hostPort}`);
  }
  return out;
}
