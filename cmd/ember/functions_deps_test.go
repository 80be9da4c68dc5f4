package main

// The test functions under testdata/ (and internal/runtimeapi/testdata/)
// are built with aws-lambda-go; go mod tidy ignores testdata, so this
// keeps the module in go.mod.
import (
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/aws/aws-lambda-go/lambdacontext"
)
