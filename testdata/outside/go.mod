module example.com/outside

go 1.26.8

require github.com/reachvm/reachvm v0.0.0

require (
	github.com/ebitengine/purego v0.11.3 // indirect
	github.com/google/btree v1.1.3 // indirect
	golang.org/x/arch v0.32.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/reachvm/reachvm => ../..
