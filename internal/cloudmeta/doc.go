// Package cloudmeta detects the cloud provider of the node from DMI files and asks its instance
// metadata service who the node is: account, instance, type, region, zone, lifecycle and IPs.
package cloudmeta
