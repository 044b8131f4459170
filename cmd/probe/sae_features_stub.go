package main

import "io"

func runSAEFeatures(args []string, stdout, stderr io.Writer) error { return errUsage }
