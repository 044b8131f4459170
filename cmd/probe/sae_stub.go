package main

import "io"

func runSAEEncode(args []string, stdout, stderr io.Writer) error   { return errUsage }
func runSAEFeatures(args []string, stdout, stderr io.Writer) error { return errUsage }
