package statusview

import "github.com/vigild/vigil/rpc"

// procFigures are one process's figures from the process monitor, and
// memFigures from the memory monitor; -1: unknown.
type procFigures struct{ cpu, resident, elapsed, private float64 }
type memFigures struct{ private, resident, current float64 }

// readProcess reads the process monitor's part, {"metrics": {PID:
// {"processor_utilization", "resident_size", "elapsed_time", "memory":
// {"private_clean_size", "private_dirty_size"}}}}, by pid. It reports
// false when the part is not of that shape; entries of a wrong type are
// skipped.
func readProcess(part []byte) (map[int]procFigures, bool) {
	if !isObject(part) {
		return nil, false
	}
	out := make(map[int]procFigures)
	for key, val := range rpc.Fields(part) {
		if string(key) != "metrics" || string(val) == "null" {
			continue
		}
		if !isObject(val) {
			return nil, false
		}
		for pidKey, proc := range rpc.Fields(val) {
			pid, ok := smallInt(pidKey)
			if !ok {
				continue
			}
			f := procFigures{-1, -1, -1, -1}
			for k, v := range rpc.Fields(proc) {
				switch string(k) {
				case "processor_utilization":
					f.cpu = number(v)
				case "resident_size":
					f.resident = number(v)
				case "elapsed_time":
					f.elapsed = number(v)
				case "memory":
					if !isObject(v) {
						continue
					}
					f.private = 0
					for mk, mv := range rpc.Fields(v) {
						switch string(mk) {
						case "private_clean_size", "private_dirty_size":
							f.private += max(number(mv), 0)
						}
					}
				}
			}
			out[pid] = f
		}
	}
	return out, true
}

// readMemory reads the memory monitor's processes, {"processes": {PID:
// {"current_size", "current_private_size", "resident_size"}}}, by pid,
// and its raw "kills". It reports false when the part is not of that
// shape.
func readMemory(part []byte) (map[int]memFigures, []byte, bool) {
	if !isObject(part) {
		return nil, nil, false
	}
	out := make(map[int]memFigures)
	var kills []byte
	for key, val := range rpc.Fields(part) {
		switch string(key) {
		case "kills":
			kills = val
		case "processes":
			if string(val) == "null" {
				continue
			}
			if !isObject(val) {
				return nil, nil, false
			}
			for pidKey, proc := range rpc.Fields(val) {
				pid, ok := smallInt(pidKey)
				if !ok {
					continue
				}
				f := memFigures{-1, -1, -1}
				for k, v := range rpc.Fields(proc) {
					switch string(k) {
					case "current_private_size":
						f.private = number(v)
					case "resident_size":
						f.resident = number(v)
					case "current_size":
						f.current = number(v)
					}
				}
				out[pid] = f
			}
		}
	}
	return out, kills, true
}

func isObject(raw []byte) bool { return len(raw) > 0 && raw[0] == '{' }

// number decodes a JSON number, or -1 (unknown).
func number(raw []byte) float64 {
	if f, ok := scanNumber(raw); ok {
		return f
	}
	return -1
}
