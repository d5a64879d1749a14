package directory

import (
	"slices"

	"github.com/caddy-sms-recovery/caddy-sms-recovery/recovery"
)

// SurveyFirst is how many accounts with a refused number a PhoneSurvey
// names.
const SurveyFirst = 5

// PhoneSurvey is what a PhonePolicy made of every number of a directory
// that holds them all (Survey).
type PhoneSurvey struct {
	Accounts int            // entries, with a number or without
	Usable   int            // numbers that may get a code
	Refused  map[string]int // numbers that may not, by PhoneReason; nil when none
	// FirstRefused are the first accounts, in sorted order, whose number
	// may not get a code: at most SurveyFirst.
	FirstRefused []string
}

// RefusedTotal returns how many numbers may not get a code.
func (s PhoneSurvey) RefusedTotal() int {
	n := 0
	for _, c := range s.Refused {
		n += c
	}
	return n
}

// Survey checks every number of entries ahead and keeps the answers, as
// Pin does, and counts them by what Check answers.
func (p *PhonePolicy) Survey(entries map[string]recovery.Entry) PhoneSurvey {
	numbers := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Phone != "" {
			numbers = append(numbers, e.Phone)
		}
	}
	p.Pin(numbers)
	s := PhoneSurvey{Accounts: len(entries)}
	var refused []string
	for account, e := range entries {
		if e.Phone == "" {
			continue
		}
		if _, err := p.Check(e.Phone); err != nil {
			if s.Refused == nil {
				s.Refused = make(map[string]int)
			}
			s.Refused[PhoneReason(err)]++
			refused = append(refused, account)
			continue
		}
		s.Usable++
	}
	slices.Sort(refused)
	s.FirstRefused = refused[:min(len(refused), SurveyFirst)]
	return s
}
