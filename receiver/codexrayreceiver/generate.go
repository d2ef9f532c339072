package codexrayreceiver

//go:generate go run ../../internal/mdgen -dir .
