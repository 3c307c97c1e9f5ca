package normalize

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// This file holds the number syntax the readers share: JSON number
// literals, integers and decimal seconds.

// maxDuration is the longest video duration accepted. Kling generates clips
// of seconds to minutes; anything beyond a day is a unit mix-up (for example
// milliseconds sent as seconds) that would mislead consumers if passed on.
const maxDuration = 24 * time.Hour

// errNegative and errTooLong are the reasons parseSeconds gives; they are
// wrapped into an ErrMalformed error naming the field.
var (
	errNegative = errors.New("must not be negative")
	errTooLong  = errors.New("exceeds 24h")
)

// parseSeconds converts a JSON number literal of seconds into a Duration,
// rounded half up to the millisecond. Plain decimals are converted digit by
// digit rather than through float64, so "5.1" is exactly 5.1s and not
// 5.0999999s.
func parseSeconds(lit string) (time.Duration, error) {
	neg := strings.HasPrefix(lit, "-")
	mag := strings.TrimPrefix(lit, "-")
	var d time.Duration
	if strings.ContainsAny(mag, "eE") {
		// Exponent notation is rare enough that float64 precision is an
		// acceptable price for not writing a big-decimal parser.
		// ParseFloat fails only on overflow (to +Inf) or underflow (to
		// zero); the latter is simply zero.
		f, err := strconv.ParseFloat(mag, 64)
		if (err != nil && f != 0) || f > maxDuration.Seconds() {
			return 0, errTooLong
		}
		d = time.Duration(f*1e3+0.5) * time.Millisecond
	} else {
		whole, frac, _ := strings.Cut(mag, ".")
		// Seven digits of whole seconds already exceed a day; checking the
		// length first keeps the arithmetic below from overflowing.
		if len(whole) > 7 {
			return 0, errTooLong
		}
		secs, err := strconv.Atoi(whole)
		if err != nil {
			return 0, errors.New("is not a number")
		}
		ms := 0
		for i := range 3 {
			ms *= 10
			if i < len(frac) {
				ms += int(frac[i] - '0')
			}
		}
		if len(frac) > 3 && frac[3] >= '5' {
			ms++
		}
		d = time.Duration(secs)*time.Second + time.Duration(ms)*time.Millisecond
	}
	if neg && d != 0 {
		return 0, errNegative
	}
	if d > maxDuration {
		return 0, errTooLong
	}
	return d, nil
}

// isInteger reports whether s is an optional minus sign followed by one or
// more ASCII digits.
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isNumber reports whether s is a number in JSON syntax. strconv.ParseFloat
// alone is too permissive for quoted numbers: it accepts "NaN", "Inf", hex
// floats and underscores, none of which a sender means as a decimal.
func isNumber(s string) bool {
	end, ok := numberEnd(s, 0)
	return ok && end == len(s)
}

// numberEnd returns the index just past the number in JSON syntax that
// starts at s[i], and false when none does. It serves isNumber and the
// scanner alike.
func numberEnd(s string, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return i, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, false
		}
	}
	return i, true
}

// smallInt parses a non-negative integer that fits an int32.
func smallInt(lit string) (int32, error) {
	if !isInteger(lit) || strings.HasPrefix(lit, "-") || len(lit) > 10 {
		return 0, ErrMalformed
	}
	var n int64
	for i := 0; i < len(lit); i++ {
		n = n*10 + int64(lit[i]-'0')
	}
	if n > 1<<31-1 {
		return 0, ErrMalformed
	}
	return int32(n), nil
}
