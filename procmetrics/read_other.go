//go:build !unix

package procmetrics

import (
	"bytes"
	"errors"
	"io"
	"os"
)

// canKeepOpen is false: files are opened for every read.
const canKeepOpen = false

var errNoFD = errors.New("procmetrics: file descriptors are not kept on this system")

// readFile reads the file at path into buf[:0], up to max bytes.
func readFile(path string, buf []byte, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	b := bytes.NewBuffer(buf[:0])
	_, err = io.Copy(b, io.LimitReader(f, int64(max)))
	return b.Bytes(), err
}

func openFD(path string) (int, error)                                  { return -1, errNoFD }
func closeFD(fd int)                                                   {}
func preadFD(fd int, path string, buf []byte, max int) ([]byte, error) { return buf[:0], errNoFD }

// countLines counts the newline characters of the file at path.
func countLines(path string, buf []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lines := 0
	for {
		n, err := f.Read(buf)
		lines += bytes.Count(buf[:n], []byte{'\n'})
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return 0, err
		}
	}
}
