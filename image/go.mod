module github.com/klingfan/klingfan/image

go 1.26.0

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/klingfan/klingfan v0.0.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/klingfan/klingfan => ../
