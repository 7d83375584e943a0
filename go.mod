module github.com/reachvm/reachvm

go 1.26.8

require (
	github.com/ebitengine/purego v0.11.3
	github.com/google/btree v1.1.3
	golang.org/x/arch v0.32.0
	golang.org/x/sys v0.49.0
)
