#!/usr/bin/env bash
# Fuzz/fuzz.sh [SECONDS] — builds the libFuzzer targets (with AddressSanitizer) in
# .build/fuzz and runs each for SECONDS (default 60), starting from the seeds in
# Fuzz/seeds/<target> and keeping what it finds in .build/fuzz/corpus/<target>.
# A crash, leak, timeout or out-of-memory stops with the reproducer's path and exit 1.
#   Reproduce: .build/fuzz/release/FuzzTar crash-<hash>
set -euo pipefail
SECONDS_EACH=${1:-60}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export BLOBSTORE_FUZZ=1
TARGETS=(FuzzTar FuzzManifest FuzzLayer)
for t in "${TARGETS[@]}"; do
    swift build -c release --scratch-path .build/fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product "$t"
done
status=0
for t in "${TARGETS[@]}"; do
    corpus=.build/fuzz/corpus/$t
    mkdir -p "$corpus" .build/fuzz/artifacts
    echo "== $t: ${SECONDS_EACH}s"
    # -rss_limit_mb: an input that makes a parser hold more than this is a finding too.
    if ! .build/fuzz/release/"$t" "$corpus" Fuzz/seeds/"$t" -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -timeout=10 -max_len=1048576 -print_final_stats=1 \
        -artifact_prefix=.build/fuzz/artifacts/"$t"- 2> .build/fuzz/"$t".log; then
        tail -40 .build/fuzz/"$t".log
        echo "$t found a problem; the input is in .build/fuzz/artifacts/" >&2
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb|cov:" .build/fuzz/"$t".log | tail -3
    fi
done
exit $status
