// Package volumes reports the disk space of a container's volumes: for each file system
// mounted into the container from a block device, its mount point in the container, the whole
// disk it lives on, the volume's name where the mount's source names it (a Kubernetes volume,
// a docker or podman named volume), and size, used and reserved bytes — what
// coroot-node-agent exports as container_resources_disk_{size,used,reserved}_bytes
// {mount_point,device,volume}.
//
// It needs no eBPF and no runtime API: the container's mounts come from
// /proc/<pid>/mountinfo (its mount namespace), sizes from statfs through
// /proc/<pid>/root/<mount point> (so it works on the host and from a pod with hostPID and the
// host's procfs), and each mount's source path on the host from the host's mount table
// (/proc/1/mountinfo: the mount with the same device whose root contains the container mount's
// root). Which mounts count, and every difference from coroot-node-agent, is stated once on
// the code that decides it (keep, volumeName).
//
// It reads files only and keeps no state between collections but buffers; it knows nothing of
// the container registry and must not import the receiver.
package volumes
