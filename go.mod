module github.com/cairn-db/cairn

go 1.24
