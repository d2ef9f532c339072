// Package codexrayreceiver is the codexray receiver: an OpenTelemetry Collector component that
// turns what a Linux node knows about itself into container and node metrics and log-pattern
// records. It owns the factory, the configuration and its validation, the lifecycle (the
// registry first, then the sources of newSources in source.go, in that order) and the
// collection into pmetric and plog through the builders generated from metadata.yaml. What each
// source reads lives in internal/; ARCHITECTURE.md at the repository root is the map.
package codexrayreceiver
