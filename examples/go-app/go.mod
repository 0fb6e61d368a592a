module github.com/hitachienergy/pull-state-operator/examples/go-app

go 1.22
