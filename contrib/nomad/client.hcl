# Add to the configuration of every Nomad client that runs sockd: the
# host volume sockd.nomad.hcl mounts at /run/sockd, for sockd's API
# socket and runtime directory. Create the directory first
# (install -d -m 0755 /run/sockd; /run is a tmpfs: make it at every boot,
# e.g. with systemd-tmpfiles: "d /run/sockd 0755 root root -").
client {
  host_volume "sockd-run" {
    path      = "/run/sockd"
    read_only = false
  }
}
