#!/bin/sh
# The mount setup of a sandboxed agent; agent/agent-sandbox.ts builds the call. Runs as pid 1 of new
# pid, mount and ipc namespaces (`unshare --fork`), root there (real root, or the mapped root of a
# user namespace). Arguments, in this order:
#   <uid|-> <gid|-> <cwd>    who the agent runs as (- = stay, capabilities dropped), where it starts
#   stage <path>             bind <path> aside (numbered 1, 2... in order) before anything is covered
#   cover <path> <mode>      an empty tmpfs with <mode> on <path> (created when missing)
#   place <n> <path> ro|rw   move staged bind <n> back to <path>
#   -- <command...>          the agent
# Every other mount of the host (but /proc, /sys, /dev) is made read-only in this namespace after
# staging. The agent runs as a child of this shell: pid 1 of a pid namespace ignores signals it has
# no handler for, so the agent (same process group) gets the shim's SIGTERM itself; when this shell
# dies, the kernel kills everything in the namespace.
set -eu

fail() {
  echo "agent-sandbox: $*" >&2
  exit 121
}

[ $# -ge 4 ] || fail 'usage: <uid|-> <gid|-> <cwd> [operations] -- <command...>'
uid=$1 gid=$2 cwd=$3
shift 3

# The private /dev/shm first: the staging area now, the agent's /dev/shm afterwards.
mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || fail 'cannot mount a tmpfs on /dev/shm'
stage=/dev/shm/.stage
mkdir -m 0700 "$stage"

n=0
while [ "$1" = stage ]; do
  n=$((n + 1))
  # A file is bound onto a file, a directory onto a directory.
  if [ -d "$2" ]; then mkdir "$stage/$n"; else : >"$stage/$n"; fi
  mount -n --rbind "$2" "$stage/$n" || fail "cannot bind $2"
  shift 2
done

# The host as it is, read-only (its own permissions still apply on top).
while read -r _ _ _ _ point _; do
  point=$(printf '%b' "$point")
  case $point in
    /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) ;;
    *) mount -n -o remount,bind,ro "$point" 2>/dev/null || fail "cannot make $point read-only" ;;
  esac
done </proc/self/mountinfo

while [ $# -gt 0 ]; do
  case $1 in
    --)
      shift
      break
      ;;
    cover)
      mkdir -p "$2"
      mount -n -t tmpfs -o "mode=$3,nosuid,nodev" tmpfs "$2" || fail "cannot cover $2"
      shift 3
      ;;
    place)
      if [ -d "$stage/$2" ]; then mkdir -p "$3"; else mkdir -p "$(dirname "$3")" && { [ -e "$3" ] || : >"$3"; }; fi
      mount -n --move "$stage/$2" "$3" || fail "cannot place $3"
      if [ "$4" = ro ]; then mount -n -o remount,bind,ro "$3" || fail "cannot make $3 read-only"; fi
      rm -d "$stage/$2" 2>/dev/null || rm -f "$stage/$2"
      shift 4
      ;;
    *) fail "unknown operation: $1" ;;
  esac
done
[ $# -gt 0 ] || fail 'no command'
rmdir "$stage" || fail 'a staged bind was not placed'
cd "$cwd" || fail "no working directory $cwd"

if [ "$uid" = - ]; then
  setpriv --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@" &
else
  setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@" &
fi
set +e
wait "$!"
exit $?
