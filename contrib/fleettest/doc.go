// Package fleettest checks the files that run sockd under an
// orchestrator (contrib/nomad, contrib/kubernetes) and the image they
// run (contrib/Dockerfile). Neither tool's own checker runs offline, so
// its tests parse each file (HCL, YAML) and check what sockd needs of
// it: host networking, the API socket on a host volume where --api
// points, the units where --units points and loading clean, the deploy
// step restarting with --wait. It has no code of its own.
package fleettest
