package deploy

// ImageUID and ImageGID are the user the container image runs klingfan as:
// the conventional "nonroot" id, owned by no system account on a typical
// host. They live here rather than in the image builder (a module of its
// own, image/) so that the manifests' tests can check the pods run as the
// image's user without the gateway's module importing the builder.
const (
	ImageUID = 65532
	ImageGID = 65532
)
