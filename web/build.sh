#!/bin/sh
# Rebuild the classroom page from the lockfile into src/edrys_relay/web/static/.
#   web/build.sh           install exactly the locked packages, then build
#   web/build.sh --check   same, but fail if the committed files differ from the build
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
exec node build.mjs "$@"
