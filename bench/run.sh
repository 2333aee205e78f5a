#!/bin/sh
# 5,000 idle connections need more descriptors than the usual soft limit: raise it to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node "$(dirname "$0")/dist/bench/run.js" "$@"
