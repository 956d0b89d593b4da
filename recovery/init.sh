#!/usr/bin/env bash
# Initialise a Bytewax recovery directory once (idempotent).
#
#   recovery/init.sh DIR [PARTITIONS]
#
# Creates DIR and PARTITIONS empty SQLite partitions with `python -m bytewax.recovery`
# only if DIR holds no partitions yet. Re-running it is safe: existing snapshots are
# never touched. PARTITIONS defaults to $RECOVERY_PARTITIONS or 1; it must stay the
# same for the life of the directory (Bytewax refuses inconsistent partition sets).
set -euo pipefail
dir=${1:?usage: recovery/init.sh DIR [PARTITIONS]}
parts=${2:-${RECOVERY_PARTITIONS:-1}}
python=${PYTHON:-python3}
if [[ -x "$(dirname "$0")/../.venv/bin/python" && -z "${PYTHON:-}" ]]; then
  python="$(dirname "$0")/../.venv/bin/python"
fi
mkdir -p "$dir"
existing=$(find "$dir" -maxdepth 1 -name 'part-*.sqlite3' | wc -l)
if (( existing > 0 )); then
  if (( existing != parts )); then
    echo "recovery/init.sh: $dir already holds $existing partitions (asked for $parts); leaving it as is" >&2
  else
    echo "recovery/init.sh: $dir already initialised ($existing partitions)" >&2
  fi
  exit 0
fi
"$python" -m bytewax.recovery "$dir" "$parts"
echo "recovery/init.sh: initialised $dir with $parts partitions" >&2
