#!/usr/bin/env bash
# Container entrypoint: prepare the state directory, drop agent credentials, exec the MCP server.
#
# Every path is overridable through the environment so the script can be exercised in a
# temporary root: STATE_PATH, CODING_AGENT_FALLBACK_STATE, WORKSPACE_PATH.
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }

# Defaults of the settings the MCP server reads (compose.yaml lists them); values already set win.
export PORT="${PORT:-3000}"
export STATE_PATH="${STATE_PATH:-/data/state}"
export CLAUDE_PROXY_HOST="${CLAUDE_PROXY_HOST:-host.docker.internal}"
export CLAUDE_PROXY_PORT="${CLAUDE_PROXY_PORT:-9876}"
export CLAUDE_AVAILABLE="${CLAUDE_AVAILABLE:-false}"
export GIT_AVAILABLE="${GIT_AVAILABLE:-false}"
export TUNNEL_ENABLED="${TUNNEL_ENABLED:-false}"
workspace="${WORKSPACE_PATH:-/workspace}"
# /tmp is a tmpfs in compose (the root file system is read-only): local, lost on restart.
fallback_state="${CODING_AGENT_FALLBACK_STATE:-/tmp/coding-agent-state}"

if [ "$TUNNEL_ENABLED" = "true" ] && [ -z "${TUNNEL_URL:-}" ]; then
  log "TUNNEL_ENABLED=true needs TUNNEL_URL (the tunnel's public https:// origin)"
  exit 64
fi

# The agents run on the host with the user's own credentials: none of them belong in here.
removed=()
for name in ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN OPENAI_API_KEY \
  CODEX_API_KEY AZURE_OPENAI_API_KEY GEMINI_API_KEY GOOGLE_API_KEY \
  GOOGLE_APPLICATION_CREDENTIALS AWS_BEARER_TOKEN_BEDROCK; do
  if [ -n "${!name+set}" ]; then
    unset "$name"
    removed+=("$name")
  fi
done
if [ "${#removed[@]}" -gt 0 ]; then
  log "removed agent credentials from the environment (agents run on the host): ${removed[*]}"
fi

# writable DIR: DIR exists (created if needed) and this user can create a file in it.
writable() {
  local probe
  mkdir -p -- "$1" 2>/dev/null || return 1
  [ -d "$1" ] && [ -w "$1" ] || return 1
  probe="$(mktemp -- "$1/.write-probe.XXXXXX" 2>/dev/null)" || return 1
  rm -f -- "$probe"
}

if ! writable "$STATE_PATH"; then
  log "WARNING: state directory $STATE_PATH is not writable by uid $(id -u);"
  log "WARNING: falling back to $fallback_state, which does NOT survive a restart of the container."
  log "WARNING: fix: make the volume writable by uid $(id -u) (see docs/troubleshooting.md)."
  if ! writable "$fallback_state"; then
    log "fallback state directory $fallback_state is not writable either; giving up"
    exit 73
  fi
  export STATE_PATH="$fallback_state"
fi
log "state directory: $STATE_PATH"

# Git refuses repositories owned by another uid unless they are marked safe.
if command -v git >/dev/null 2>&1; then
  if ! git config --global --get-all safe.directory 2>/dev/null | grep -qxF -- "$workspace"; then
    git config --global --add safe.directory "$workspace" \
      || log "could not mark $workspace as a git safe directory (HOME not writable?)"
  fi
fi

exec coding-agent serve --host 0.0.0.0 "$@"
