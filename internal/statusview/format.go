package statusview

import "fmt"

// FormatSize formats bytes in binary units: "512 B", "12.3 MiB"; "-" when
// unknown (negative).
func FormatSize(b float64) string {
	if b < 0 {
		return "-"
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// FormatUptime formats seconds as "45s", "12m03s", "5h07m", "3d04h"; "-"
// when unknown (negative).
func FormatUptime(s float64) string {
	if s < 0 {
		return "-"
	}
	t := int64(s)
	switch {
	case t < 60:
		return fmt.Sprintf("%ds", t)
	case t < 3600:
		return fmt.Sprintf("%dm%02ds", t/60, t%60)
	case t < 86400:
		return fmt.Sprintf("%dh%02dm", t/3600, t%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", t/86400, t%86400/3600)
	}
}

// FormatCPU formats a percentage of one core: "12.5%"; "-" when unknown
// (negative).
func FormatCPU(p float64) string {
	if p < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", p)
}
