//go:build !linux

package container

import "fmt"

// Room is one limit on how many processes may be created from here.
type Room struct {
	// What the limit is.
	What string
	// Limit is the maximum; Used what is in use now; Free the difference.
	Limit, Used, Free int
}

// String is "WHAT: LIMIT, USED in use".
func (r Room) String() string { return fmt.Sprintf("%s: %d, %d in use", r.What, r.Limit, r.Used) }

// ProcessRooms returns no limit where none can be read (not Linux).
func ProcessRooms() []Room { return nil }

// PipePages is 0, 0: no share of pipe memory is known here.
func PipePages() (share, perPipe int) { return 0, 0 }

// ReserveThreads does nothing where the container does not run.
func ReserveThreads(int) {}
