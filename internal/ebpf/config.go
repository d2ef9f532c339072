package ebpf

import (
	"fmt"
	"os"
)

// DefaultRingBufferSize is the ring buffer Load creates when LoadOptions.RingBufferSize is 0.
const DefaultRingBufferSize = 4 << 20

// CheckRingBufferSize reports whether n bytes can be the ring buffer: the kernel wants a power
// of two and a multiple of the page size; more than 1 GiB is a typo.
func CheckRingBufferSize(n int) error {
	page := os.Getpagesize()
	if n < page || n&(n-1) != 0 || n%page != 0 || n > 1<<30 {
		return fmt.Errorf("must be a power of two between the page size (%d) and 1 GiB, got %d", page, n)
	}
	return nil
}
