#!/bin/sh
# LLM-Sentinel container entrypoint (docs/deploy.md).
#
#   docker run IMAGE                      run the dataflow: python -m bytewax.run dataflows.sentinel:flow
#   docker run IMAGE -s 10 ...            same, extra flags passed to bytewax.run
#   docker run IMAGE init-recovery        only create the recovery partitions if missing (k8s init container)
#   docker run IMAGE sentinel check-config /etc/sentinel/sentinel.yaml   any other command is exec'd as is
#
# Cluster settings come from the environment, read by bytewax.run itself (bytewax/run.py):
#   BYTEWAX_WORKERS_PER_PROCESS                    -w (default 1)
#   BYTEWAX_POD_NAME + BYTEWAX_STATEFULSET_NAME    -i = the pod ordinal ("sentinel-3" → 3)
#   BYTEWAX_HOSTFILE_PATH                          -a = the file's lines joined with ";"
#   (or BYTEWAX_PROCESS_ID + BYTEWAX_ADDRESSES directly)
# Recovery (off unless a directory is given):
#   SENTINEL_RECOVERY__DIR (or BYTEWAX_RECOVERY_DIRECTORY)   -r
#   SENTINEL_RECOVERY__SNAPSHOT_S (default 30)               -s
#   SENTINEL_RECOVERY__BACKUP_S (default 600)                -b
#   BYTEWAX_RECOVERY_PARTS (default 1)   partitions created when the directory holds none
# The bytewax Helm chart runs `sh ./entrypoint.sh` and `sh ./entrypoint-recovery.sh` in the
# image's working directory: both are copies of this script (see Dockerfile).
set -eu

flow=${SENTINEL_FLOW:-dataflows.sentinel:flow}
recovery_dir=${SENTINEL_RECOVERY__DIR:-${BYTEWAX_RECOVERY_DIRECTORY:-}}
parts=${BYTEWAX_RECOVERY_PARTS:-1}

init_recovery() {
    if [ -z "$recovery_dir" ]; then
        echo "entrypoint: no recovery directory (SENTINEL_RECOVERY__DIR / BYTEWAX_RECOVERY_DIRECTORY)" >&2
        return 1
    fi
    mkdir -p "$recovery_dir"
    if ls "$recovery_dir"/part-*.sqlite3 >/dev/null 2>&1; then
        echo "entrypoint: $recovery_dir already holds recovery partitions; kept as is" >&2
    else
        python -m bytewax.recovery "$recovery_dir" "$parts"
        echo "entrypoint: created $parts recovery partitions in $recovery_dir" >&2
    fi
}

case "$(basename "$0")" in
    entrypoint-recovery.sh) init_recovery; exit 0 ;;
esac
if [ "${1:-}" = "init-recovery" ]; then
    init_recovery
    exit 0
fi
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

set -- -w "${BYTEWAX_WORKERS_PER_PROCESS:-1}" "$@"
if [ -n "$recovery_dir" ]; then
    init_recovery
    snapshot=${SENTINEL_RECOVERY__SNAPSHOT_S:-${BYTEWAX_SNAPSHOT_INTERVAL:-30}}
    backup=${SENTINEL_RECOVERY__BACKUP_S:-${BYTEWAX_RECOVERY_BACKUP_INTERVAL:-600}}
    # bytewax.run takes whole seconds
    set -- -r "$recovery_dir" -s "${snapshot%%.*}" -b "${backup%%.*}" "$@"
fi
exec python -m bytewax.run "$flow" "$@"
