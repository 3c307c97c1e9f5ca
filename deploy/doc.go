// Package deploy holds klingfan's deployment files: Kubernetes manifests
// (kubernetes/single, kubernetes/cluster), a systemd unit (systemd/), a
// Grafana dashboard (grafana/) and Prometheus alert rules (prometheus/).
// Its only code is the image's user (ImageUID, ImageGID). Its tests check
// that those files agree with the binary: flags that parse, ports and probe
// paths the server serves, the image's user, and metric names the server
// exports.
package deploy
