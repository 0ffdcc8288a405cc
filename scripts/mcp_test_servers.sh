#!/usr/bin/env bash
# Installs the npm MCP server the tests talk to (@modelcontextprotocol/server-everything)
# into a cache outside the repository; idempotent; prints the server's entry point.
#   TOOLTRAIL_NPM_CACHE (default ~/.cache/tooltrail/npm) picks the folder.
set -euo pipefail
VERSION=2026.8.31
DIR="${TOOLTRAIL_NPM_CACHE:-$HOME/.cache/tooltrail/npm}"
PKG="$DIR/node_modules/@modelcontextprotocol/server-everything"
if ! grep -q "\"version\": \"$VERSION\"" "$PKG/package.json" 2>/dev/null; then
  mkdir -p "$DIR"
  npm install --silent --no-audit --no-fund --prefix "$DIR" \
    "@modelcontextprotocol/server-everything@$VERSION" >&2
fi
echo "$PKG/dist/index.js"
