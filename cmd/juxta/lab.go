package main

import (
	"context"
	"errors"
	"io"
)

func runLab(ctx context.Context, args []string, out io.Writer) error {
	return errors.New("juxta lab: not built yet")
}
