package ebpf

import "os/exec"

func runTrue() error { return exec.Command("true").Run() }
