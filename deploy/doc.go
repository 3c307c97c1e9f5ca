// Package deploy holds klingfan's deployment files: Kubernetes manifests
// (kubernetes/single, kubernetes/cluster), a systemd unit (systemd/), a
// Grafana dashboard (grafana/) and Prometheus alert rules (prometheus/).
// It has no code; its tests check that those files agree with the binary:
// flags that parse, ports and probe paths the server serves, the image's
// user, and metric names the server exports.
package deploy
