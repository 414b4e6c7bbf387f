#!/bin/sh
# Selects the role of the ccfs-export image: worker (default), api, simulator, or the CLI.
set -eu
cd /app
role="${1:-worker}"
[ "$#" -gt 0 ] && shift
case "$role" in
  worker) exec node --import tsx worker/main.ts "$@" ;;
  api) exec node --import tsx api/main.ts "$@" ;;
  simulator) exec node --import tsx simulator/main.ts "$@" ;;
  cli | ccfs-export) exec node bin/ccfs-export.mjs "$@" ;;
  *) exec "$role" "$@" ;;
esac
