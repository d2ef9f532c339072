// Package apptype tells what program a process is, in the vocabulary of coroot-node-agent's
// container_application_type{application_type}: postgres, mysql, mongodb, redis, memcached,
// nginx, envoy, haproxy, kafka, zookeeper, elasticsearch, rabbitmq, java, golang, python,
// nodejs, php, ruby, dotnet and the others FromCmdline lists. Coroot's server picks inspections
// and icons by these values.
//
// A process is read through a configurable procfs root: its command line (FromCmdline), its
// executable's path (FromExecutable, interpreters only) and, for Go and .NET, a few bytes of
// its ELF file (a Go binary carries a .go.buildinfo section starting with a fixed magic; a .NET
// apphost has the RPATH $ORIGIN/netcoredeps). ELF facts are cached per executable file (device,
// inode, size, mtime), so each binary is opened once however many processes run it; the cache
// is bounded.
//
// It reads only; it knows nothing of containers (callers take the union over a container's
// processes, as coroot-node-agent does) and must not import the receiver.
package apptype
