package main

// How a command stays safe: the three shared rules (issue 23) and where each lives. A new command
// (train, sanity, sae …) applies all three; the registry-driven tests in registry_test.go then
// cover it once commandArgs has an entry for it (they fail, naming the command, until it has).
//
// (a) Every file it writes goes through the one safe writer, internal/outfile:
//   - name every output as soon as the flags are parsed and check them together before any
//     work: outfile.CheckAll(paths...) or an outfile.Set (Set.AddFrom names the inputs of two
//     outputs that would share a name; Set{Fresh: true} also refuses existing files, for commands
//     without --force/--resume). A package that writes a set (linear.WriteReport,
//     faithfulness.Report.Write) exports its file names (ReportFiles) for this.
//   - write each file with outfile.Write / WriteFile / WriteNew (temporary name in the same
//     folder, synced, renamed or linked into place; never opened through a link or a FIFO),
//     outfile.SavePlot for gonum plots, viz.SavePNG / SaveFigure for figures (which use Write),
//     weights.WriteSafetensors for tensors; outfile.Append for a log that grows line by line.
//     Never os.Create, os.WriteFile or plot.Save on an output path.
//   - TestEveryOutputThroughSafeWriter plants each file the command wrote as a symlink or FIFO
//     and wants a refusal naming it with nothing else written.
//
// (b) Every size a flag sets is checked before it is allocated, through internal/flagcheck:
//   - a buffer sized by a flag: flagcheck.Bytes("--flag", value, flagcheck.Mul(value, bytesPerUnit…))
//     as soon as the shapes are known (checkBatch for a --batch of images); a count that only sets
//     work: flagcheck.Count("--flag", value, ceiling) with the flags.
//   - TestEveryNumericFlagHuge reads the command's numeric flags from its -h, runs it with each at
//     its type's largest value in a child capped at 6 GB of address space (PROBE_MEMORY_LIMIT=2G),
//     and wants a finished run or a one-line error naming the flag: no crash, no run that goes on.
//
// (c) Every resumable run and every reader of several parts checks the run identity through
//   internal/runid:
//   - a resumable command stores modelIdentity(m, name) and sourceIdentity(data, src) (weights
//     digest, configs, precision, source path and digest) with its own settings, and on --resume
//     compares them with runid.Check (flatIdentity turns a settings struct into keys), refusing
//     a difference before any work; extract does this through probe.WriterOptions.Identity.
//   - a command reading stored features opens them with openFeatures(path, allowMixed, stderr)
//     and registers --allow-mixed (allowMixedFlag): parts of other weights, sources, layers or
//     precision are refused naming both files.
//   - TestEveryReaderAndResumeChecksIdentity feeds every --features reader a folder of two
//     models' parts, and resumes every command with --resume and --model on other weights.
