#!/usr/bin/env bash
# Runs one esurio fuzz target with the options docs/FUZZING.md documents.
#
#   fuzz/run.sh <target> [seconds] [extra libFuzzer options...]
#
# Targets: decode_any, avro_single_object, json_record, validators (`cargo +nightly fuzz list`).
# New corpus entries go to fuzz/corpus/<target> (git-ignored), crashes to fuzz/artifacts/<target>/;
# fuzz/seeds/<target> is read as a second, committed corpus. One job, niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz/run.sh <target> [seconds] [libFuzzer options...]}
secs=${2:-600}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
extra=()
case "$target" in
  decode_any | json_record) extra+=(-dict=fuzz/dict/records.dict -max_len=8192) ;;
  avro_single_object) extra+=(-max_len=8192) ;;
  validators) extra+=(-max_len=1024 -len_control=0) ;;
esac
# Smaller ASan quarantine so that -rss_limit_mb measures the code, not freed memory ASan keeps.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=32}
exec nice -n 10 cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
  -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=64 -timeout=10 \
  -print_final_stats=1 "${extra[@]}" "$@"
