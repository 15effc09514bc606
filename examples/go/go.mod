module rateclust.example/go

go 1.19
