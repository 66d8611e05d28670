#!/bin/sh
# Creates secrets/pg-su-password and secrets/pg-repl-password (mode 0600) for compose.yaml,
# unless they exist. The keeper refuses password files that group or others can read.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
for name in pg-su-password pg-repl-password; do
    if [ ! -f "secrets/$name" ]; then
        head -c 18 /dev/urandom | base64 > "secrets/$name"
        echo "created secrets/$name"
    fi
done
