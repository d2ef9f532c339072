package cloudmeta

import (
	"os"
	"path/filepath"
	"strings"
)

// azureAssetTag is the chassis asset tag Azure sets on every VM; Hyper-V elsewhere shares the
// "Microsoft Corporation"/"Virtual Machine" vendor and product strings but not the tag.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// dmi is the subset of /sys/class/dmi/id that identifies a cloud.
type dmi struct {
	sysVendor, productName, productVersion, productUUID           string
	biosVendor, biosVersion, boardVendor, chassisVendor, assetTag string
}

func readDMI(root string) dmi {
	read := func(name string) string {
		// Missing files (no DMI at all, as on this project's test VMs, or on arm boards) and
		// unreadable ones (product_uuid is root-only) both just mean "no evidence".
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return dmi{
		sysVendor:      read("sys_vendor"),
		productName:    read("product_name"),
		productVersion: read("product_version"),
		productUUID:    read("product_uuid"),
		biosVendor:     read("bios_vendor"),
		biosVersion:    read("bios_version"),
		boardVendor:    read("board_vendor"),
		chassisVendor:  read("chassis_vendor"),
		assetTag:       read("chassis_asset_tag"),
	}
}

// detection is what DMI says about the provider.
type detection struct {
	provider Provider
	// probe: DMI fits the provider but also fits machines outside it (Hyper-V, plain Xen), so
	// only an answer from the metadata service confirms it.
	probe bool
	// evidence says which file decided, for the log.
	evidence string
}

// detectDMI classifies a DMI tree. The zero detection means "not a known cloud".
func detectDMI(root string) detection {
	d := readDMI(root)
	anyVendor := func(v string) bool {
		return d.sysVendor == v || d.biosVendor == v || d.boardVendor == v || d.chassisVendor == v
	}
	switch {
	case anyVendor("Amazon EC2") || d.assetTag == "Amazon EC2":
		// Nitro instances.
		return detection{provider: AWS, evidence: "vendor Amazon EC2"}
	case strings.Contains(strings.ToLower(d.biosVersion), "amazon") || strings.Contains(strings.ToLower(d.productVersion), "amazon"):
		// Xen instances: "4.11.amazon".
		return detection{provider: AWS, evidence: "Xen bios_version " + d.biosVersion}
	case anyVendor("Google") || d.productName == "Google Compute Engine":
		return detection{provider: GCP, evidence: "vendor Google"}
	case d.assetTag == azureAssetTag:
		return detection{provider: Azure, evidence: "Azure chassis_asset_tag"}
	case d.sysVendor == "Microsoft Corporation" && d.productName == "Virtual Machine":
		return detection{provider: Azure, probe: true, evidence: "Hyper-V virtual machine without the Azure asset tag"}
	case anyVendor("Hetzner"):
		return detection{provider: Hetzner, evidence: "vendor Hetzner"}
	case anyVendor("DigitalOcean"):
		return detection{provider: DigitalOcean, evidence: "vendor DigitalOcean"}
	case d.assetTag == "OracleCloud.com":
		return detection{provider: Oracle, evidence: "chassis_asset_tag OracleCloud.com"}
	case anyVendor("Alibaba Cloud") || strings.HasPrefix(d.productName, "Alibaba Cloud"):
		return detection{provider: Alibaba, evidence: "vendor Alibaba Cloud"}
	case anyVendor("Scaleway"):
		return detection{provider: Scaleway, evidence: "vendor Scaleway"}
	case strings.HasPrefix(strings.ToLower(d.productUUID), "ec2"):
		// Old Xen instances without "amazon" in the BIOS strings; one random UUID in 4096
		// also starts with ec2.
		return detection{provider: AWS, probe: true, evidence: "product_uuid starting with ec2"}
	}
	return detection{}
}

// Detect reads the DMI files under dmiRoot (normally /sys/class/dmi/id) and returns the cloud
// provider (a Provider value such as "aws") when they identify one for certain. Machines whose
// DMI only hints at a cloud (Hyper-V without Azure's asset tag, Xen with an ec2-looking UUID)
// give ok=false here; the Watcher confirms those with a metadata request.
func Detect(dmiRoot string) (provider string, ok bool) {
	d := detectDMI(dmiRoot)
	if d.provider == "" || d.probe {
		return "", false
	}
	return string(d.provider), true
}
