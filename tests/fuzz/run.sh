#!/bin/sh
# run.sh TARGET SECONDS CORPUS NEWDIR - a bounded libFuzzer run: new inputs go
# to NEWDIR (the committed corpus is only read); a crash, leak or timeout
# fails the test and leaves the reproducer in NEWDIR.
set -eu
mkdir -p "$4"
exec "$1" -max_total_time="$2" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$4/" "$4" "$3"
