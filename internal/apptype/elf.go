package apptype

import (
	"bytes"
	"debug/elf"
	"io"
)

// goBuildInfoMagic opens the .go.buildinfo section of every Go binary since Go 1.13, stripped
// ones included (-ldflags=-s removes symbols, not this data section).
var goBuildInfoMagic = []byte("\xff Go buildinf:")

// elfFacts is what the executable file tells, read once per file.
type elfFacts struct {
	golang        bool
	dotnetApphost bool
}

// readELFFacts reads the ELF header, the section headers and at most the first bytes of
// .go.buildinfo and the dynamic section: never the whole binary. A file that is not ELF (a
// script, a truncated file) has no facts.
func readELFFacts(r io.ReaderAt) elfFacts {
	f, err := elf.NewFile(r)
	if err != nil {
		return elfFacts{}
	}
	defer func() { _ = f.Close() }() // only read
	var facts elfFacts
	if sec := f.Section(".go.buildinfo"); sec != nil && sec.Type != elf.SHT_NOBITS {
		magic := make([]byte, len(goBuildInfoMagic))
		if _, err := sec.ReadAt(magic, 0); err == nil && bytes.Equal(magic, goBuildInfoMagic) {
			facts.golang = true
			return facts
		}
	}
	// The .NET apphost (a native launcher named after the application) finds its runtime
	// next to itself: coroot-node-agent recognises it by this RPATH/RUNPATH.
	if dyn := f.Section(".dynamic"); dyn != nil && dyn.Size < 1<<20 {
		paths, _ := f.DynString(elf.DT_RPATH)
		if len(paths) == 0 {
			paths, _ = f.DynString(elf.DT_RUNPATH)
		}
		facts.dotnetApphost = len(paths) == 1 && paths[0] == "$ORIGIN/netcoredeps"
	}
	return facts
}
