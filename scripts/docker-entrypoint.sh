#!/bin/sh
# Entrypoint of the platform image: one image, the service chosen by the first argument or SERVICE.
#   docker run IMAGE forwarder          SERVICE=janitor docker run IMAGE          docker run IMAGE ztm status
# The service replaces this shell (exec), so it is PID 1 and receives SIGTERM itself: every
# services/<name>/main stops taking work, hands back in-flight jobs and exits on SIGTERM.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
service="${1:-${SERVICE:-}}"
[ "$#" -gt 0 ] && shift
case "$service" in
  ingress|forwarder|waker|janitor|pool-keeper|dashboard|admin-api)
    exec node --enable-source-maps "$here/dist/services/$service/main.js" "$@" ;;
  ztm)
    exec node --enable-source-maps "$here/dist/cli/run.js" "$@" ;;
  healthcheck)
    exec node "$here/dist/services/healthcheck.js" "$@" ;;
  *)
    echo "usage: SERVICE=<name> or argument <name>: ingress|forwarder|waker|janitor|pool-keeper|dashboard|admin-api|ztm (got \"$service\")" >&2
    exit 2 ;;
esac
