package containers

import "os"

func filepathTempDir() (string, error) { return os.MkdirTemp("", "cx") }
func removeAll(dir string)             { _ = os.RemoveAll(dir) }

// settle publishes the runtime metadata of every container queued for it, as the metadata
// goroutine would shortly after: tests that attribute a process and then check names call it
// in between.
func (r *Registry) settle() { r.fetchMetadata(r.ctx) }
