package containers

// ContainerIDByCgroupID is ContainerByCgroupID for callers that keep container IDs only (the
// eBPF tracer): who the container is stays the registry's to say.
func (r *Registry) ContainerIDByCgroupID(id uint64) (ID, bool) {
	return idOf(r.ContainerByCgroupID(id))
}

// ContainerIDByPID is ContainerByPID for callers that keep container IDs only.
func (r *Registry) ContainerIDByPID(pid uint32) (ID, bool) {
	return idOf(r.ContainerByPID(pid))
}

func idOf(c *Container, ok bool) (ID, bool) {
	if !ok || c == nil {
		return "", false
	}
	return c.ID, true
}
