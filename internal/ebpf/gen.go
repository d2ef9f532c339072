package ebpf

// The objects are committed so that `go build` and ocb need no clang. `make generate` runs this;
// CI regenerates and compares against the committed files.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -type event -target amd64,arm64 codexray codexray.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -type l7_segment -type seeded_key -target amd64,arm64 l7 l7.c
