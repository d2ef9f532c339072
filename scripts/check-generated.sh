#!/usr/bin/env bash
# Fails when generated files (bpf2go objects, internal/metadata, documentation.md) differ from
# what `make generate` produces from their sources. Works in a dirty tree too: it compares the
# files before and after regeneration instead of asking git.
set -euo pipefail
cd "$(dirname "$0")/.."
generated() {
	git ls-files -co --exclude-standard -- 'internal/ebpf/*_bpfel.go' 'internal/ebpf/*_bpfel.o' \
		'receiver/codexrayreceiver/internal/metadata/generated_*.go' 'receiver/codexrayreceiver/documentation.md'
}
before=$(generated | xargs -r sha256sum)
go generate ./...
after=$(generated | xargs -r sha256sum)
if [ "$before" != "$after" ]; then
	echo "generated files are stale; run 'make generate' and commit the result:" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	exit 1
fi
echo "generated files are up to date"
