#!/usr/bin/env bash
# build-and-deploy.sh: build, push and roll out platform components.
#
#   ./scripts/build-and-deploy.sh all|ingress|forwarder|waker|janitor|pool-keeper|dashboard|admin-api|zeroclaw ...
#
# The Go system's targets still work: `orchestrator` (its wakes, idle reconciler and warm pool are
# now janitor, waker and pool-keeper, its tenant HTTP API the admin-api) and `router` (now ingress and
# forwarder); each prints what it maps to. `all` (and `orchestrator`) roll out every Deployment the
# release has: one that is not installed (the dashboard with `dashboard.enabled: false`, the admin
# API unless `services.adminApi.enabled: true`) is skipped with a note, not an error.
#
# Services share one multi-arch image (Dockerfile; the Deployment's args pick the service), so
# building any service builds that image and restarts the named Deployment(s); `all` builds it once
# and restarts every service. `zeroclaw` builds the tenant pod image (agent/Dockerfile, amd64 only:
# kata-qemu nodes are amd64 metal) for AGENT_PROFILE (docs/agents.md): `zeroclaw` builds ZeroClaw from
# ZEROCLAW_DIR when that directory exists (else from upstream's release tarball), `openclaw` the
# OpenClaw image (Node 24), `reference` the reference agent; unset: ZeroClaw when ZEROCLAW_DIR
# exists, else the reference agent. No rollout for it: tenant pods are ephemeral and the next wake uses the new image
# (warm pool members are replaced as they are claimed; `kubectl -n tenants-agents delete pod -l app=warm-pool` to
# refresh them at once).
#
# Environment (the Go system's names):
#   ECR_REGISTRY  <AWS_ACCOUNT_ID>.dkr.ecr.<AWS_REGION>.amazonaws.com   registry to push to
#   AWS_REGION    us-east-1                      region (ECR login when the registry is ECR)
#   KUBE_CONTEXT  current kubectl context        context of the rollouts
#   NAMESPACE     tenants                        namespace of the Deployments
#   PLATFORMS     linux/amd64,linux/arm64        platforms of the services image
#   ZEROCLAW_DIR  ./zeroclaw                     checkout of zeroclaw-labs/zeroclaw
#   AGENT_PROFILE unset                          reference|zeroclaw|openclaw: which agent the tenant image holds
#   TAG           latest                         image tag (also: SERVICES_IMAGE, AGENT_IMAGE names)
#   DRY_RUN       unset                          1: print the commands instead of running them
set -euo pipefail

ECR_REGISTRY="${ECR_REGISTRY:-<AWS_ACCOUNT_ID>.dkr.ecr.<AWS_REGION>.amazonaws.com}"
AWS_REGION="${AWS_REGION:-us-east-1}"
KUBE_CONTEXT="${KUBE_CONTEXT:-}"
NAMESPACE="${NAMESPACE:-tenants}"
PLATFORMS="${PLATFORMS:-linux/amd64,linux/arm64}"
ZEROCLAW_DIR="${ZEROCLAW_DIR:-./zeroclaw}"
TAG="${TAG:-latest}"
SERVICES_IMAGE="${SERVICES_IMAGE:-agentic-tenancy}"
AGENT_IMAGE="${AGENT_IMAGE:-zeroclaw}"
DRY_RUN="${DRY_RUN:-}"
AGENT_PROFILE="${AGENT_PROFILE:-}"

SERVICES=(ingress forwarder waker janitor pool-keeper dashboard admin-api)
# Off by default in the chart: skipped when not installed, by name or as part of `all`/`orchestrator`.
OPTIONAL_SERVICES=(dashboard admin-api)
# The Go system's deployment names, and what each became.
declare -A LEGACY_TARGETS=([orchestrator]="janitor waker pool-keeper admin-api" [router]="ingress forwarder")
PROJECT_DIR="$(cd "$(dirname "$0")/.." && pwd)"

info() { printf '==> %s\n' "$*"; }
die() { printf 'build-and-deploy: %s\n' "$*" >&2; exit 1; }
run() {
  if [ -n "$DRY_RUN" ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
kube() {
  if [ -n "$KUBE_CONTEXT" ]; then run kubectl --context "$KUBE_CONTEXT" -n "$NAMESPACE" "$@"; else run kubectl -n "$NAMESPACE" "$@"; fi
}

usage() {
  echo "usage: $0 all|ingress|forwarder|waker|janitor|pool-keeper|dashboard|admin-api|zeroclaw|orchestrator|router ..." >&2
  exit 2
}

# True when the release has this Deployment (asked even under DRY_RUN: it changes nothing).
deployment_exists() {
  local args=(-n "$NAMESPACE" get "deployment/$1" -o name)
  [ -n "$KUBE_CONTEXT" ] && args=(--context "$KUBE_CONTEXT" "${args[@]}")
  kubectl "${args[@]}" >/dev/null 2>&1
}

preflight() {
  [ -n "$DRY_RUN" ] && return 0
  case "$ECR_REGISTRY" in *'<'*) die "set ECR_REGISTRY (e.g. 123456789012.dkr.ecr.${AWS_REGION}.amazonaws.com)" ;; esac
  command -v docker >/dev/null || die "docker is not installed"
  docker buildx version >/dev/null 2>&1 || die "docker buildx is required (multi-arch builds)"
  if [[ "$ECR_REGISTRY" == *.dkr.ecr.*.amazonaws.com ]]; then
    command -v aws >/dev/null || die "the aws CLI is required to log in to ECR"
    aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "$ECR_REGISTRY" >/dev/null
  fi
}

built_services=""
build_services_image() {
  [ -n "$built_services" ] && return 0
  local image="${ECR_REGISTRY}/${SERVICES_IMAGE}:${TAG}"
  info "building ${image} (${PLATFORMS})"
  run docker buildx build --platform "$PLATFORMS" -f "$PROJECT_DIR/Dockerfile" -t "$image" --push "$PROJECT_DIR"
  built_services=1
}

rollout() {
  local deployment="$1"
  info "rolling out deployment/${deployment}"
  kube rollout restart "deployment/${deployment}"
  kube rollout status "deployment/${deployment}" --timeout=180s
}

build_zeroclaw() {
  local image="${ECR_REGISTRY}/${AGENT_IMAGE}:${TAG}"
  local extra=()
  local profile="$AGENT_PROFILE"
  [ -n "$profile" ] || { [ -d "$ZEROCLAW_DIR" ] && profile=zeroclaw || profile=reference; }
  case "$profile" in
    zeroclaw)
      if [ -d "$ZEROCLAW_DIR" ]; then
        info "building ${image} (linux/amd64): shim + ZeroClaw from ${ZEROCLAW_DIR}"
        extra=(--build-arg AGENT=zeroclaw --build-context "zeroclaw=${ZEROCLAW_DIR}")
      else
        info "building ${image} (linux/amd64): shim + ZeroClaw from upstream's release tarball"
        extra=(--build-arg AGENT=zeroclaw --build-arg ZEROCLAW_FROM=release)
      fi ;;
    openclaw)
      info "building ${image} (linux/amd64): shim + OpenClaw (Node 24)"
      extra=(--build-arg AGENT=openclaw) ;;
    reference)
      info "building ${image} (linux/amd64): shim + reference agent"
      extra=(--build-arg AGENT=reference) ;;
    *) echo "AGENT_PROFILE must be reference, zeroclaw or openclaw (custom agents bring their own image)" >&2; exit 2 ;;
  esac
  run docker buildx build --platform linux/amd64 -f "$PROJECT_DIR/agent/Dockerfile" "${extra[@]}" -t "$image" --push "$PROJECT_DIR"
  info "tenant pods are ephemeral: the next wake uses ${image}"
}

[ "$#" -gt 0 ] || usage
for target in "$@"; do
  case "$target" in
    all|zeroclaw|orchestrator|router) ;;
    *) [[ " ${SERVICES[*]} " == *" ${target} "* ]] || { echo "unknown target: ${target}" >&2; usage; } ;;
  esac
done
preflight
for target in "$@"; do
  case "$target" in
    all)
      build_services_image
      for s in "${SERVICES[@]}"; do
        if deployment_exists "$s"; then rollout "$s"; else info "deployment/${s} is not installed in ${NAMESPACE}: skipped"; fi
      done
      build_zeroclaw ;;
    zeroclaw) build_zeroclaw ;;
    orchestrator|router)
      info "${target} is the Go system's name: it maps to ${LEGACY_TARGETS[$target]}"
      build_services_image
      for s in ${LEGACY_TARGETS[$target]}; do
        if [[ " ${OPTIONAL_SERVICES[*]} " == *" ${s} "* ]] && ! deployment_exists "$s"; then info "deployment/${s} is not installed in ${NAMESPACE}: skipped"; else rollout "$s"; fi
      done ;;
    *)
      build_services_image
      rollout "$target" ;;
  esac
done
info "done"
