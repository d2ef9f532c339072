package containers

import "os"

func filepathTempDir() (string, error) { return os.MkdirTemp("", "cx") }
func removeAll(dir string)             { _ = os.RemoveAll(dir) }
